<?php
/**
 * Standard Webhooks v1 (symmetric, HMAC-SHA256) signatures.
 *
 * Signed content is "{webhook-id}.{webhook-timestamp}.{body}"; the header
 * value is "v1," + base64(HMAC-SHA256(key, content)), where key is the
 * base64-decoded secret without its "whsec_" prefix.
 * See https://www.standardwebhooks.com/ (spec/standard-webhooks.md).
 *
 * This file has no WordPress dependency on purpose: the PHPUnit tests and
 * the Python interoperability test load it on its own.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) && ! defined( 'APPOINTEASE_RT_STANDALONE' ) ) {
	exit;
}

/**
 * Signs and verifies Standard Webhooks v1 signatures.
 */
final class AppointEase_RT_Signer {

	const SECRET_PREFIX     = 'whsec_';
	const DEFAULT_TOLERANCE = 300;

	/**
	 * Raw HMAC key.
	 *
	 * @var string
	 */
	private $key;

	/**
	 * @param string $secret "whsec_<base64>" (the prefix is optional).
	 * @throws InvalidArgumentException When the secret is empty or not base64.
	 */
	public function __construct( string $secret ) {
		$this->key = self::decode_secret( $secret );
	}

	/**
	 * Decodes a "whsec_<base64>" secret to the raw key bytes.
	 *
	 * @param string $secret Secret as configured.
	 * @return string Raw key.
	 * @throws InvalidArgumentException When the secret is empty or not base64.
	 */
	public static function decode_secret( string $secret ): string {
		$secret = trim( $secret );
		if ( 0 === strpos( $secret, self::SECRET_PREFIX ) ) {
			$secret = substr( $secret, strlen( self::SECRET_PREFIX ) );
		}
		$key = base64_decode( $secret, true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode
		if ( false === $key || '' === $key ) {
			throw new InvalidArgumentException( 'The webhook secret must be "whsec_" followed by non-empty base64.' );
		}
		return $key;
	}

	/**
	 * Creates a fresh random secret in the "whsec_" format (32 random bytes).
	 */
	public static function generate_secret(): string {
		return self::SECRET_PREFIX . base64_encode( random_bytes( 32 ) ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
	}

	/**
	 * Signs one message.
	 *
	 * @param string     $id        webhook-id (must not contain ".").
	 * @param int|string $timestamp Unix seconds (non-negative integer).
	 * @param string     $body      Exact bytes sent as the request body.
	 * @return string "v1,<base64>".
	 * @throws InvalidArgumentException On a malformed id or timestamp.
	 */
	public function sign( string $id, $timestamp, string $body ): string {
		if ( '' === $id || false !== strpos( $id, '.' ) ) {
			throw new InvalidArgumentException( 'The webhook id must be non-empty and contain no ".".' );
		}
		$timestamp = self::normalize_timestamp( $timestamp );
		if ( null === $timestamp ) {
			throw new InvalidArgumentException( 'The webhook timestamp must be a non-negative integer.' );
		}
		$mac = hash_hmac( 'sha256', $id . '.' . $timestamp . '.' . $body, $this->key, true );
		return 'v1,' . base64_encode( $mac ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
	}

	/**
	 * The three Standard Webhooks headers for one delivery attempt.
	 *
	 * @param string $id        webhook-id.
	 * @param int    $timestamp Unix seconds at send time.
	 * @param string $body      Exact body bytes.
	 * @return array<string,string>
	 */
	public function headers( string $id, int $timestamp, string $body ): array {
		return array(
			'webhook-id'        => $id,
			'webhook-timestamp' => (string) $timestamp,
			'webhook-signature' => $this->sign( $id, $timestamp, $body ),
		);
	}

	/**
	 * Verifies a received message.
	 *
	 * Header names are case-insensitive; values may be strings or lists (as
	 * WP_REST_Request::get_headers() returns them). The signature header may
	 * carry several space-separated "version,signature" entries (secret
	 * rotation): one matching "v1" entry is enough. Comparison is constant-time.
	 *
	 * @param array<string,mixed> $headers   Request headers.
	 * @param string              $body      Raw request body.
	 * @param int                 $tolerance Allowed clock skew in seconds.
	 * @param int|null            $now       Current unix time (tests), default time().
	 */
	public function verify( array $headers, string $body, int $tolerance = self::DEFAULT_TOLERANCE, ?int $now = null ): bool {
		$lower = array();
		foreach ( $headers as $name => $value ) {
			if ( is_array( $value ) ) {
				$value = reset( $value );
			}
			$lower[ strtolower( str_replace( '_', '-', (string) $name ) ) ] = (string) $value;
		}
		$id        = $lower['webhook-id'] ?? '';
		$timestamp = self::normalize_timestamp( $lower['webhook-timestamp'] ?? '' );
		$header    = $lower['webhook-signature'] ?? '';
		if ( '' === $id || null === $timestamp || '' === $header || false !== strpos( $id, '.' ) ) {
			return false;
		}
		$now = null === $now ? time() : $now;
		if ( abs( $now - $timestamp ) > $tolerance ) {
			return false;
		}
		$expected = $this->sign( $id, $timestamp, $body );
		$matched  = false;
		foreach ( preg_split( '/\s+/', trim( $header ) ) as $candidate ) {
			if ( 0 !== strpos( $candidate, 'v1,' ) ) {
				continue;
			}
			// Keep looping after a match so the time spent does not depend on the position.
			if ( hash_equals( $expected, $candidate ) ) {
				$matched = true;
			}
		}
		return $matched;
	}

	/**
	 * Returns the timestamp as an int, or null when it is not a plain non-negative integer.
	 *
	 * @param mixed $timestamp Candidate.
	 */
	private static function normalize_timestamp( $timestamp ): ?int {
		if ( is_int( $timestamp ) ) {
			return $timestamp >= 0 ? $timestamp : null;
		}
		if ( is_string( $timestamp ) && 1 === preg_match( '/^\d{1,12}$/', $timestamp ) ) {
			return (int) $timestamp;
		}
		return null;
	}
}
