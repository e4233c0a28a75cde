<?php
/**
 * The bridge configuration: wp-config.php constants, or else the options the
 * settings page saves. A constant always wins over the option of the same field.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Immutable view of the bridge configuration.
 */
final class AppointEase_RT_Config {

	/** The option (one array) the settings page writes. */
	const OPTION = 'appointease_rt_settings';

	/** Field of the option => the wp-config.php constant that overrides it. */
	const CONSTANTS = array(
		'url'          => 'APPOINTEASE_RT_URL',
		'public_url'   => 'APPOINTEASE_RT_PUBLIC_URL',
		'hook_secret'  => 'APPOINTEASE_RT_HOOK_SECRET',
		'token_secret' => 'APPOINTEASE_RT_TOKEN_SECRET',
	);

	/** Bytes of a Standard Webhooks secret (after "whsec_" and base64), as the spec allows. */
	const HOOK_SECRET_MIN_BYTES = 24;
	const HOOK_SECRET_MAX_BYTES = 64;

	/** Longest token secret the settings page accepts. */
	const TOKEN_SECRET_MAX_LENGTH = 512;

	/** @var string Daemon base URL as WordPress reaches it, no trailing slash. */
	public $url;

	/** @var string WebSocket URL handed to browsers. */
	public $public_url;

	/** @var string Standard Webhooks secret ("whsec_..."). */
	public $secret;

	/** @var string HS256 secret for connection tokens (shared with the daemon's TOKEN_SECRET). */
	public $token_secret;

	/** @var array<string, string> Field => constant name, for the fields a constant sets. */
	public $locked;

	/**
	 * @param string               $url          Daemon URL (APPOINTEASE_RT_URL).
	 * @param string               $public_url   Browser URL (APPOINTEASE_RT_PUBLIC_URL).
	 * @param string               $secret       Hook secret (APPOINTEASE_RT_HOOK_SECRET).
	 * @param string               $token_secret Token secret (APPOINTEASE_RT_TOKEN_SECRET).
	 * @param array<string,string> $locked       Field => constant, for the fields wp-config.php sets.
	 */
	public function __construct( string $url, string $public_url, string $secret, string $token_secret = '', array $locked = array() ) {
		$this->url          = rtrim( trim( $url ), '/' );
		$this->public_url   = trim( $public_url );
		$this->secret       = trim( $secret );
		$this->token_secret = trim( $token_secret );
		$this->locked       = $locked;
	}

	/**
	 * Builds the configuration from the wp-config.php constants only.
	 */
	public static function from_constants(): self {
		return self::from_values( array() );
	}

	/**
	 * The configuration in force: each constant that is defined, else the saved option.
	 */
	public static function load(): self {
		$stored = function_exists( 'get_option' ) ? get_option( self::OPTION, array() ) : array();
		return self::from_values( is_array( $stored ) ? $stored : array() );
	}

	/**
	 * Constants over $stored (the option's array).
	 *
	 * @param array<string, mixed> $stored Saved values by field.
	 */
	public static function from_values( array $stored ): self {
		$values = array();
		$locked = array();
		foreach ( self::CONSTANTS as $field => $constant ) {
			if ( defined( $constant ) ) {
				$values[ $field ]  = (string) constant( $constant );
				$locked[ $field ] = $constant;
			} else {
				$values[ $field ] = isset( $stored[ $field ] ) && is_scalar( $stored[ $field ] ) ? (string) $stored[ $field ] : '';
			}
		}
		return new self( $values['url'], $values['public_url'], $values['hook_secret'], $values['token_secret'], $locked );
	}

	/**
	 * True when wp-config.php sets this field (the settings page cannot change it).
	 *
	 * @param string $field url | public_url | hook_secret | token_secret.
	 */
	public function is_locked( string $field ): bool {
		return isset( $this->locked[ $field ] );
	}

	/**
	 * Why a daemon URL (server side) is unusable, or '' when it is fine.
	 *
	 * @param string $url URL.
	 */
	public static function url_error( string $url ): string {
		return self::check_url( $url, array( 'http', 'https' ) )
			? ''
			: __( 'The daemon URL must be an http:// or https:// URL with a host, without query or fragment.', 'appointease-realtime-bridge' );
	}

	/**
	 * Why a browser URL is unusable, or '' when it is fine.
	 *
	 * @param string $url URL.
	 */
	public static function public_url_error( string $url ): string {
		return self::check_url( $url, array( 'ws', 'wss' ) )
			? ''
			: __( 'The browser URL must be a ws:// or wss:// URL with a host, without query or fragment.', 'appointease-realtime-bridge' );
	}

	/**
	 * Why a hook secret is unusable, or '' when it is fine.
	 *
	 * @param string $secret "whsec_" + base64 of 24 to 64 bytes.
	 */
	public static function hook_secret_error( string $secret ): string {
		$message = __( 'The hook secret must be "whsec_" followed by the base64 of 24 to 64 random bytes.', 'appointease-realtime-bridge' );
		if ( 0 !== strpos( $secret, AppointEase_RT_Signer::SECRET_PREFIX ) ) {
			return $message;
		}
		try {
			$key = AppointEase_RT_Signer::decode_secret( $secret );
		} catch ( InvalidArgumentException $e ) {
			return $message;
		}
		$bytes = strlen( $key );
		return $bytes < self::HOOK_SECRET_MIN_BYTES || $bytes > self::HOOK_SECRET_MAX_BYTES ? $message : '';
	}

	/**
	 * Why a token secret is unusable, or '' when it is fine.
	 *
	 * @param string $secret At least 32 characters, no control characters.
	 */
	public static function token_secret_error( string $secret ): string {
		if ( strlen( $secret ) < AppointEase_RT_Jwt::MIN_SECRET_BYTES || strlen( $secret ) > self::TOKEN_SECRET_MAX_LENGTH || 1 === preg_match( '/[\x00-\x20\x7f]/', $secret ) ) {
			return __( 'The token secret must be 32 to 512 characters long, without spaces or control characters.', 'appointease-realtime-bridge' );
		}
		return '';
	}

	/**
	 * A fresh hook secret: "whsec_" + base64 of 32 random bytes.
	 */
	public static function generate_hook_secret(): string {
		return AppointEase_RT_Signer::generate_secret();
	}

	/**
	 * A fresh token secret: 64 hex characters (32 random bytes).
	 */
	public static function generate_token_secret(): string {
		return bin2hex( random_bytes( 32 ) );
	}

	/**
	 * A secret as it may be shown again: the first 6 and the last 4 characters.
	 *
	 * @param string $secret Secret.
	 */
	public static function mask( string $secret ): string {
		$length = strlen( $secret );
		if ( 0 === $length ) {
			return '';
		}
		if ( $length < 20 ) {
			return str_repeat( '*', 8 );
		}
		return substr( $secret, 0, 6 ) . '...' . substr( $secret, -4 );
	}

	/**
	 * True for scheme://host[:port][/path] with one of $schemes.
	 *
	 * @param string   $url     URL.
	 * @param string[] $schemes Allowed schemes (lower case).
	 */
	private static function check_url( string $url, array $schemes ): bool {
		if ( '' === $url || 1 === preg_match( '/[\s<>"\x00-\x1f\x7f]/', $url ) ) {
			return false;
		}
		$parts = function_exists( 'wp_parse_url' ) ? wp_parse_url( $url ) : parse_url( $url ); // phpcs:ignore WordPress.WP.AlternativeFunctions.parse_url_parse_url
		return is_array( $parts )
			&& isset( $parts['scheme'], $parts['host'] )
			&& in_array( strtolower( $parts['scheme'] ), $schemes, true )
			&& '' !== $parts['host']
			&& ! isset( $parts['query'] )
			&& ! isset( $parts['fragment'] )
			&& ! isset( $parts['user'] )
			&& ! isset( $parts['pass'] );
	}

	/**
	 * True when hooks can be delivered (URL and a valid secret are set).
	 */
	public function can_deliver(): bool {
		// No translation calls here: this runs on every event, possibly before "init".
		if ( '' === $this->url || ! preg_match( '#^https?://#i', $this->url ) || '' === $this->secret ) {
			return false;
		}
		try {
			AppointEase_RT_Signer::decode_secret( $this->secret );
		} catch ( InvalidArgumentException $e ) {
			return false;
		}
		return true;
	}

	/**
	 * Human-readable problems that prevent delivery (empty when none).
	 *
	 * @return string[]
	 */
	public function delivery_problems(): array {
		$problems = array();
		if ( '' === $this->url ) {
			$problems[] = __( 'The daemon URL is not set: enter it on the settings page or define APPOINTEASE_RT_URL in wp-config.php.', 'appointease-realtime-bridge' );
		} elseif ( ! preg_match( '#^https?://#i', $this->url ) ) {
			$problems[] = __( 'The daemon URL (APPOINTEASE_RT_URL) must start with http:// or https://.', 'appointease-realtime-bridge' );
		}
		if ( '' === $this->secret ) {
			$problems[] = __( 'The hook secret is not set: generate one on the settings page or define APPOINTEASE_RT_HOOK_SECRET in wp-config.php.', 'appointease-realtime-bridge' );
		} else {
			try {
				AppointEase_RT_Signer::decode_secret( $this->secret );
			} catch ( InvalidArgumentException $e ) {
				$problems[] = __( 'The hook secret (APPOINTEASE_RT_HOOK_SECRET) must look like whsec_<base64>.', 'appointease-realtime-bridge' );
			}
		}
		return $problems;
	}

	/**
	 * Problems that only affect the browser side (wsUrl).
	 *
	 * @return string[]
	 */
	public function public_url_problems(): array {
		if ( '' === $this->public_url ) {
			return array( __( 'The browser URL is not set (settings page or APPOINTEASE_RT_PUBLIC_URL): the booking block keeps its own wsUrl.', 'appointease-realtime-bridge' ) );
		}
		if ( ! preg_match( '#^wss?://#i', $this->public_url ) ) {
			return array( __( 'The browser URL (APPOINTEASE_RT_PUBLIC_URL) must start with ws:// or wss://.', 'appointease-realtime-bridge' ) );
		}
		return array();
	}

	/**
	 * True when connection tokens can be issued (a secret of at least 32 bytes).
	 */
	public function can_issue_tokens(): bool {
		return strlen( $this->token_secret ) >= AppointEase_RT_Jwt::MIN_SECRET_BYTES;
	}

	/**
	 * Problems that prevent issuing connection tokens (empty when none).
	 *
	 * @return string[]
	 */
	public function token_problems(): array {
		if ( '' === $this->token_secret ) {
			return array( __( 'The token secret is not set (settings page or APPOINTEASE_RT_TOKEN_SECRET): no connection tokens are issued and browsers connect without one.', 'appointease-realtime-bridge' ) );
		}
		if ( ! $this->can_issue_tokens() ) {
			return array( __( 'The token secret (APPOINTEASE_RT_TOKEN_SECRET) must be at least 32 characters long: no connection tokens are issued.', 'appointease-realtime-bridge' ) );
		}
		return array();
	}

	/**
	 * The public URL when it is usable ('' otherwise), without a trailing slash.
	 */
	public function usable_public_url(): string {
		return array() === $this->public_url_problems() ? rtrim( $this->public_url, '/' ) : '';
	}

	/**
	 * URL of the hook endpoint.
	 */
	public function hook_url(): string {
		return $this->url . '/hooks/booking';
	}

	/**
	 * URL of the readiness endpoint.
	 */
	public function readyz_url(): string {
		return $this->url . '/readyz';
	}
}
