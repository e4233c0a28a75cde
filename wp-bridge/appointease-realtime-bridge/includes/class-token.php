<?php
/**
 * Connection tokens for the daemon: who the current visitor is, and the REST
 * route GET /wp-json/appointease-realtime/v1/token that hands out a fresh one.
 *
 * Identity, in this order:
 * 1. a logged-in WordPress user: sub "wp:<id>", email = user_email, role
 *    admin (manage_options), staff (the capability of the filter
 *    "appointease_rt_staff_capability", default appointease_rt_staff, which
 *    activation grants to the administrator role only) or customer; the
 *    filter "appointease_rt_token_role" has the last word ('' = issue no
 *    token). Staff see every customer's name, e-mail and phone, so the
 *    capability is the bridge's own, not an editor's edit_others_posts;
 * 2. otherwise AppointEase's own customer session (e-mail + one-time code),
 *    which only AppointEase knows: the filter
 *    "appointease_rt_current_customer_email" answers with that e-mail, giving
 *    sub "customer:<email>", role customer;
 * 3. otherwise nobody: no token.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Token issuing and the token REST route.
 */
final class AppointEase_RT_Token {

	const REST_NAMESPACE = 'appointease-realtime/v1';
	const REST_ROUTE     = '/token';
	const CACHE_CONTROL  = 'no-store, no-cache, must-revalidate, max-age=0, private';

	/** The capability that makes a WordPress user "staff" in the daemon (filterable). */
	const STAFF_CAPABILITY = 'appointease_rt_staff';

	/** @var AppointEase_RT_Config */
	private $config;

	/**
	 * @param AppointEase_RT_Config $config Configuration.
	 */
	public function __construct( AppointEase_RT_Config $config ) {
		$this->config = $config;
	}

	/**
	 * Registers the REST route and the page-cache guard.
	 */
	public function register(): void {
		add_action( 'rest_api_init', array( $this, 'register_route' ) );
		add_action( 'send_headers', array( $this, 'no_cache_for_customer_sessions' ) );
	}

	/**
	 * GET /appointease-realtime/v1/token.
	 */
	public function register_route(): void {
		register_rest_route(
			self::REST_NAMESPACE,
			self::REST_ROUTE,
			array(
				'methods'             => 'GET',
				'callback'            => array( $this, 'handle' ),
				// Public on purpose: handle() decides, so that every answer,
				// the 401 included, carries the no-store headers.
				'permission_callback' => '__return_true',
			)
		);
	}

	/**
	 * URL of the token route (what the page hands out as bookingAPI.rtTokenUrl).
	 */
	public static function route_url(): string {
		return rest_url( self::REST_NAMESPACE . self::REST_ROUTE );
	}

	/**
	 * The current visitor's identity, or null for an anonymous visitor.
	 *
	 * @return array{sub: string, email: string, role: string}|null
	 */
	public function current_identity(): ?array {
		$user = wp_get_current_user();
		if ( $user instanceof WP_User && $user->exists() ) {
			$role = self::default_role( $user );
			/**
			 * Filters the role of a WordPress user's connection token.
			 *
			 * @param string  $role customer | staff | admin; anything else issues no token.
			 * @param WP_User $user The user.
			 */
			$role = apply_filters( 'appointease_rt_token_role', $role, $user );
			if ( ! is_string( $role ) || ! in_array( $role, AppointEase_RT_Jwt::ROLES, true ) ) {
				return null;
			}
			return array(
				'sub'   => 'wp:' . (int) $user->ID,
				'email' => strtolower( (string) $user->user_email ),
				'role'  => $role,
			);
		}
		/**
		 * The e-mail of AppointEase's current customer session (logged in by
		 * e-mail + one-time code), or '' when there is none. AppointEase (or a
		 * site snippet) answers it; the bridge cannot see that session itself.
		 *
		 * @param string $email ''.
		 */
		$email = apply_filters( 'appointease_rt_current_customer_email', '' );
		if ( is_string( $email ) && '' !== $email && is_email( trim( $email ) ) ) {
			$email = strtolower( trim( $email ) );
			return array(
				'sub'   => 'customer:' . $email,
				'email' => $email,
				'role'  => 'customer',
			);
		}
		return null;
	}

	/**
	 * admin (manage_options), staff (the staff capability) or customer.
	 *
	 * @param WP_User $user User.
	 */
	public static function default_role( WP_User $user ): string {
		if ( user_can( $user, 'manage_options' ) ) {
			return 'admin';
		}
		/**
		 * The capability that makes a WordPress user "staff" in the daemon:
		 * staff see every customer's name, e-mail and phone.
		 *
		 * @param string $capability Default appointease_rt_staff (granted to
		 *                           administrators on activation; give it to
		 *                           a role or a user to make them staff).
		 */
		$capability = (string) apply_filters( 'appointease_rt_staff_capability', self::STAFF_CAPABILITY );
		if ( '' !== $capability && user_can( $user, $capability ) ) {
			return 'staff';
		}
		return 'customer';
	}

	/**
	 * A fresh token for the current visitor, or null (anonymous, or tokens not configured).
	 *
	 * @return array{token: string, claims: array<string,mixed>, expires_at: int, lifetime: int}|null
	 */
	public function issue_for_current(): ?array {
		if ( ! $this->config->can_issue_tokens() ) {
			return null;
		}
		$identity = $this->current_identity();
		if ( null === $identity ) {
			return null;
		}
		/**
		 * Lifetime of a connection token in seconds (clamped to 60 s .. 12 h).
		 *
		 * @param int   $lifetime Default 3600.
		 * @param array $identity sub, email, role.
		 */
		$lifetime = (int) apply_filters( 'appointease_rt_token_lifetime', AppointEase_RT_Jwt::DEFAULT_LIFETIME, $identity );
		return AppointEase_RT_Jwt::issue( $this->config->token_secret, $identity['sub'], $identity['email'], $identity['role'], $lifetime );
	}

	/**
	 * The WebSocket URL carrying a token in its path ('' without a usable public URL).
	 *
	 * The block appends "?email=..." itself, so the token goes in the path.
	 *
	 * @param string $token A token.
	 */
	public function ws_url( string $token ): string {
		$base = $this->config->usable_public_url();
		return '' === $base ? '' : $base . '/ws/' . $token;
	}

	/**
	 * Handles GET /appointease-realtime/v1/token.
	 *
	 * @param WP_REST_Request $request Request.
	 */
	public function handle( WP_REST_Request $request ): WP_REST_Response {
		// WordPress sends its own no-cache headers after ours for logged-in users: make them no-store too.
		add_filter( 'nocache_headers', array( __CLASS__, 'no_store_headers' ) );
		if ( null !== $request->get_param( '_jsonp' ) ) {
			return self::error( 'appointease_rt_jsonp_refused', __( 'Connection tokens are not served as JSONP.', 'appointease-realtime-bridge' ), 403 );
		}
		if ( ! $this->same_origin( $request ) ) {
			return self::error( 'appointease_rt_cross_origin', __( 'Connection tokens are only given to pages of this site.', 'appointease-realtime-bridge' ), 403 );
		}
		if ( ! $this->config->can_issue_tokens() ) {
			return self::error( 'appointease_rt_tokens_disabled', __( 'Connection tokens are not configured (token secret / APPOINTEASE_RT_TOKEN_SECRET).', 'appointease-realtime-bridge' ), 503 );
		}
		$issued = $this->issue_for_current();
		if ( null === $issued ) {
			return self::error( 'rest_not_logged_in', __( 'You are not logged in.', 'appointease-realtime-bridge' ), 401 );
		}
		$ws_url = $this->ws_url( $issued['token'] );
		return self::no_store(
			new WP_REST_Response(
				array(
					'token'     => $issued['token'],
					'expiresAt' => gmdate( 'Y-m-d\TH:i:s\Z', $issued['expires_at'] ),
					'expiresIn' => $issued['lifetime'],
					'role'      => $issued['claims']['role'],
					'wsUrl'     => '' === $ws_url ? null : $ws_url,
				),
				200
			)
		);
	}

	/**
	 * Front end: a page for a customer session carries a token, so no cache may keep it.
	 *
	 * Pages of logged-in WordPress users already get no-cache headers from
	 * WordPress and are skipped by page caches (wordpress_logged_in_* cookie).
	 */
	public function no_cache_for_customer_sessions(): void {
		if ( is_user_logged_in() || ! $this->config->can_issue_tokens() || '' === $this->config->usable_public_url() ) {
			return;
		}
		if ( null !== $this->current_identity() && ! headers_sent() ) {
			add_filter( 'nocache_headers', array( __CLASS__, 'no_store_headers' ) );
			nocache_headers();
		}
	}

	/**
	 * Filter "nocache_headers": Cache-Control no-store (a token is a credential).
	 *
	 * @param array $headers Header name => value.
	 * @return array
	 */
	public static function no_store_headers( $headers ) {
		$headers                  = (array) $headers;
		$headers['Cache-Control'] = self::CACHE_CONTROL;
		return $headers;
	}

	/**
	 * False for a request a page of another site made (CORS fetch or a script tag).
	 *
	 * WordPress answers every REST request that has an Origin header with
	 * Access-Control-Allow-Origin: <that origin> and Allow-Credentials: true;
	 * for cookie logins its wp_rest nonce is what stops other sites. A
	 * customer session (AppointEase's own cookie) has no such nonce, so this
	 * route also refuses any Origin that is not the site's own (filter
	 * "appointease_rt_token_allowed_origins"), and a request without Origin
	 * that the browser marks as cross-site or same-site (Sec-Fetch-Site), such
	 * as <script src>. Requests from the site's own pages, and non-browser
	 * clients that send neither header, pass.
	 *
	 * @param WP_REST_Request $request Request.
	 */
	public function same_origin( WP_REST_Request $request ): bool {
		$origin = trim( (string) $request->get_header( 'origin' ) );
		if ( '' !== $origin ) {
			return in_array( self::normalize_origin( $origin ), $this->allowed_origins(), true );
		}
		$fetch_site = strtolower( trim( (string) $request->get_header( 'sec_fetch_site' ) ) );
		return ! in_array( $fetch_site, array( 'cross-site', 'same-site' ), true );
	}

	/**
	 * The origins whose pages may fetch a token: home and site URL, filterable.
	 *
	 * @return string[]
	 */
	public function allowed_origins(): array {
		$origins = array( self::normalize_origin( home_url() ), self::normalize_origin( site_url() ) );
		/**
		 * Origins (scheme://host[:port]) whose pages may fetch connection tokens.
		 *
		 * @param string[] $origins The site's home and site URL origins.
		 */
		$origins = (array) apply_filters( 'appointease_rt_token_allowed_origins', $origins );
		return array_values( array_filter( array_map( array( __CLASS__, 'normalize_origin' ), array_map( 'strval', $origins ) ) ) );
	}

	/**
	 * "scheme://host[:port]" lower-cased, default ports dropped; '' when not a URL.
	 *
	 * @param string $url URL or origin.
	 */
	public static function normalize_origin( string $url ): string {
		$parts = wp_parse_url( trim( $url ) );
		if ( ! is_array( $parts ) || empty( $parts['scheme'] ) || empty( $parts['host'] ) ) {
			return '';
		}
		$scheme = strtolower( $parts['scheme'] );
		$origin = $scheme . '://' . strtolower( $parts['host'] );
		if ( isset( $parts['port'] ) && ! ( ( 'http' === $scheme && 80 === (int) $parts['port'] ) || ( 'https' === $scheme && 443 === (int) $parts['port'] ) ) ) {
			$origin .= ':' . (int) $parts['port'];
		}
		return $origin;
	}

	/**
	 * An error in WordPress's REST error shape, not cacheable.
	 *
	 * @param string $code    Machine-readable code.
	 * @param string $message Message.
	 * @param int    $status  HTTP status.
	 */
	private static function error( string $code, string $message, int $status ): WP_REST_Response {
		return self::no_store(
			new WP_REST_Response(
				array(
					'code'    => $code,
					'message' => $message,
					'data'    => array( 'status' => $status ),
				),
				$status
			)
		);
	}

	/**
	 * Adds headers that keep every cache (browser, proxy, page cache) from storing the answer.
	 *
	 * @param WP_REST_Response $response Response.
	 */
	private static function no_store( WP_REST_Response $response ): WP_REST_Response {
		$response->header( 'Cache-Control', self::CACHE_CONTROL );
		$response->header( 'Pragma', 'no-cache' );
		$response->header( 'Expires', 'Wed, 11 Jan 1984 05:00:00 GMT' );
		return $response;
	}
}
