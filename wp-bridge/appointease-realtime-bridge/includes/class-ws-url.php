<?php
/**
 * Points the booking block at the daemon: overrides window.bookingAPI.wsUrl.
 *
 * AppointEase prints `var bookingAPI = {root, nonce, wsUrl}` with
 * wp_localize_script() on a script handle we do not know. Right before
 * scripts are printed (head and footer, front end and admin), every
 * registered script whose localized data defines bookingAPI gets an inline
 * "before" script. WordPress prints a handle's localized data first, then its
 * "before" inline scripts, then the script itself, so the override always
 * runs after AppointEase's assignment and before the block reads it.
 *
 * For a logged-in WordPress user or an AppointEase customer session (see
 * AppointEase_RT_Token) the URL carries a fresh connection token in its path,
 * "<APPOINTEASE_RT_PUBLIC_URL>/ws/<token>", and bookingAPI.rtTokenUrl names
 * the REST route that hands out a new one. Anonymous visitors get the plain
 * public URL, so pages cached for anonymous visitors never contain a token.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * wsUrl override.
 */
final class AppointEase_RT_Ws_Url {

	/** @var AppointEase_RT_Config */
	private $config;

	/** @var AppointEase_RT_Token */
	private $tokens;

	/** @var array<string, true> Handles already patched. */
	private $patched = array();

	/** @var array{ws_url: string, token_url: string}|null This request's values (one token per page). */
	private $values = null;

	/**
	 * @param AppointEase_RT_Config     $config Configuration.
	 * @param AppointEase_RT_Token|null $tokens Token issuer (default: one over $config).
	 */
	public function __construct( AppointEase_RT_Config $config, ?AppointEase_RT_Token $tokens = null ) {
		$this->config = $config;
		$this->tokens = $tokens ?? new AppointEase_RT_Token( $config );
	}

	/**
	 * Registers the hooks (only when a usable public URL is configured).
	 */
	public function register(): void {
		foreach ( array( 'wp_print_scripts', 'wp_print_footer_scripts', 'admin_print_scripts', 'admin_print_footer_scripts' ) as $hook ) {
			add_action( $hook, array( $this, 'patch' ), 5 );
		}
	}

	/**
	 * The URL handed to browsers: the public URL, plus "/ws/<token>" for a
	 * known visitor. Filter "appointease_rt_ws_url" can change it.
	 */
	public function url(): string {
		return $this->values()['ws_url'];
	}

	/**
	 * wsUrl and rtTokenUrl for this request (a token is issued once per request).
	 *
	 * @return array{ws_url: string, token_url: string}
	 */
	private function values(): array {
		if ( null !== $this->values ) {
			return $this->values;
		}
		$url       = $this->config->usable_public_url();
		$token_url = '';
		$issued    = null;
		if ( '' !== $url && $this->config->can_issue_tokens() ) {
			$token_url = AppointEase_RT_Token::route_url();
			$issued    = $this->tokens->issue_for_current();
			if ( null !== $issued ) {
				$url = $this->tokens->ws_url( $issued['token'] );
			}
		}
		/**
		 * Filters the WebSocket URL handed to the booking block.
		 *
		 * @param string     $url    The public URL, with "/ws/<token>" for a known visitor ('' = keep the block's own).
		 * @param array|null $issued The issued token (token, claims, expires_at, lifetime) or null.
		 */
		$url = (string) apply_filters( 'appointease_rt_ws_url', $url, $issued );
		if ( null !== $issued && ! defined( 'DONOTCACHEPAGE' ) ) {
			// The page carries a personal token: page-cache plugins must not store it.
			define( 'DONOTCACHEPAGE', true );
		}
		$this->values = array(
			'ws_url'    => $url,
			'token_url' => $token_url,
		);
		return $this->values;
	}

	/**
	 * Adds the override to every handle that localizes bookingAPI.
	 */
	public function patch(): void {
		$handles = array();
		foreach ( wp_scripts()->registered as $handle => $dependency ) {
			$data = $dependency->extra['data'] ?? '';
			if ( ! isset( $this->patched[ $handle ] ) && is_string( $data ) && preg_match( '/\bbookingAPI\s*=/', $data ) ) {
				$handles[] = $handle;
			}
		}
		if ( array() === $handles ) {
			return; // No booking block on this page: no token is issued.
		}
		$values = $this->values();
		if ( '' === $values['ws_url'] ) {
			return;
		}
		$js = 'window.bookingAPI.wsUrl = ' . wp_json_encode( $values['ws_url'], JSON_UNESCAPED_SLASHES ) . ';';
		if ( '' !== $values['token_url'] ) {
			$js .= ' window.bookingAPI.rtTokenUrl = ' . wp_json_encode( $values['token_url'], JSON_UNESCAPED_SLASHES ) . ';';
		}
		foreach ( $handles as $handle ) {
			$this->patched[ $handle ] = true;
			wp_add_inline_script(
				$handle,
				'if (typeof window.bookingAPI === "object" && window.bookingAPI !== null) { ' . $js . ' }',
				'before'
			);
		}
	}
}
