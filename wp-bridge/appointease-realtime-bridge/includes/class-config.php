<?php
/**
 * Reads the wp-config.php constants once and says what is missing.
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

	/** @var string Daemon base URL as WordPress reaches it, no trailing slash. */
	public $url;

	/** @var string WebSocket URL handed to browsers. */
	public $public_url;

	/** @var string Standard Webhooks secret ("whsec_..."). */
	public $secret;

	/** @var string HS256 secret for connection tokens (shared with the daemon's TOKEN_SECRET). */
	public $token_secret;

	/**
	 * @param string $url        APPOINTEASE_RT_URL.
	 * @param string $public_url APPOINTEASE_RT_PUBLIC_URL.
	 * @param string $secret       APPOINTEASE_RT_HOOK_SECRET.
	 * @param string $token_secret APPOINTEASE_RT_TOKEN_SECRET.
	 */
	public function __construct( string $url, string $public_url, string $secret, string $token_secret = '' ) {
		$this->url          = rtrim( trim( $url ), '/' );
		$this->public_url   = trim( $public_url );
		$this->secret       = trim( $secret );
		$this->token_secret = trim( $token_secret );
	}

	/**
	 * Builds the configuration from the wp-config.php constants.
	 */
	public static function from_constants(): self {
		return new self(
			defined( 'APPOINTEASE_RT_URL' ) ? (string) constant( 'APPOINTEASE_RT_URL' ) : '',
			defined( 'APPOINTEASE_RT_PUBLIC_URL' ) ? (string) constant( 'APPOINTEASE_RT_PUBLIC_URL' ) : '',
			defined( 'APPOINTEASE_RT_HOOK_SECRET' ) ? (string) constant( 'APPOINTEASE_RT_HOOK_SECRET' ) : '',
			defined( 'APPOINTEASE_RT_TOKEN_SECRET' ) ? (string) constant( 'APPOINTEASE_RT_TOKEN_SECRET' ) : ''
		);
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
			$problems[] = __( 'APPOINTEASE_RT_URL is not defined in wp-config.php.', 'appointease-realtime-bridge' );
		} elseif ( ! preg_match( '#^https?://#i', $this->url ) ) {
			$problems[] = __( 'APPOINTEASE_RT_URL must start with http:// or https://.', 'appointease-realtime-bridge' );
		}
		if ( '' === $this->secret ) {
			$problems[] = __( 'APPOINTEASE_RT_HOOK_SECRET is not defined in wp-config.php.', 'appointease-realtime-bridge' );
		} else {
			try {
				AppointEase_RT_Signer::decode_secret( $this->secret );
			} catch ( InvalidArgumentException $e ) {
				$problems[] = __( 'APPOINTEASE_RT_HOOK_SECRET must look like whsec_<base64>.', 'appointease-realtime-bridge' );
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
			return array( __( 'APPOINTEASE_RT_PUBLIC_URL is not defined: the booking block keeps its own wsUrl.', 'appointease-realtime-bridge' ) );
		}
		if ( ! preg_match( '#^wss?://#i', $this->public_url ) ) {
			return array( __( 'APPOINTEASE_RT_PUBLIC_URL must start with ws:// or wss://.', 'appointease-realtime-bridge' ) );
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
			return array( __( 'APPOINTEASE_RT_TOKEN_SECRET is not defined: no connection tokens are issued and browsers connect without one.', 'appointease-realtime-bridge' ) );
		}
		if ( ! $this->can_issue_tokens() ) {
			return array( __( 'APPOINTEASE_RT_TOKEN_SECRET must be at least 32 characters long: no connection tokens are issued.', 'appointease-realtime-bridge' ) );
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
