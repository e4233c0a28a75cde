<?php
/**
 * The daemon's hold cookie: which clientId this browser is, proven by a MAC.
 *
 * On every WebSocket upgrade the daemon sets the first-party cookie
 * "appointease_rt_hold" = "<clientId>.<expiry>.<signature>": expiry in Unix
 * seconds, signature the unpadded base64url of
 * HMAC-SHA256(TOKEN_SECRET, "appointease-rt-hold-cookie:v1:<clientId>.<expiry>").
 * Cookies ignore ports, so a daemon on :8080 of the site's host sets a cookie
 * that the site's own booking requests carry. WordPress verifies it here to
 * tell the holder of a slot from everybody else (AppointEase_RT_Hold_Guard).
 *
 * The value is parsed from the right (a clientId may contain dots); values
 * longer than 400 characters, a non-numeric or past expiry and a bad
 * signature (hash_equals) prove nothing. Same rules as the daemon's
 * appointease_realtime.hold_cookie.verify(), checked both ways by
 * tests/test_bridge_cookie_interop.py.
 *
 * This file has no WordPress dependency: the tests load it on its own.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) && ! defined( 'APPOINTEASE_RT_STANDALONE' ) ) {
	exit;
}

/**
 * Verifies (and, for tests and tooling, mints) hold cookies.
 */
final class AppointEase_RT_Hold_Cookie {

	/** Cookie name. */
	const NAME = 'appointease_rt_hold';

	/** What the MAC covers before "<clientId>.<expiry>": a label of its own, so no other token passes for it. */
	const LABEL = 'appointease-rt-hold-cookie:v1:';

	/** Longest value accepted. */
	const MAX_LENGTH = 400;

	/** Lifetime of a minted cookie (the daemon's LIFETIME_SECONDS). */
	const LIFETIME = 86400;

	/** Digits of an expiry that still fit a PHP integer (Unix seconds have 10). */
	const MAX_EXPIRY_DIGITS = 18;

	/**
	 * The clientId a cookie value proves, or null (forged, expired, malformed, no secret).
	 *
	 * @param string   $secret The token secret (the daemon's TOKEN_SECRET).
	 * @param string   $value  The cookie value.
	 * @param int|null $now    Unix seconds (default: time()).
	 */
	public static function verify( string $secret, string $value, ?int $now = null ): ?string {
		if ( '' === $secret || strlen( $value ) > self::MAX_LENGTH ) {
			return null;
		}
		$last = strrpos( $value, '.' );
		if ( false === $last ) {
			return null;
		}
		$signature = substr( $value, $last + 1 );
		$head      = substr( $value, 0, $last );
		$dot       = strrpos( $head, '.' );
		if ( false === $dot ) {
			return null;
		}
		$client_id   = substr( $head, 0, $dot );
		$expiry_text = substr( $head, $dot + 1 );
		if ( '' === $client_id || ! ctype_digit( $expiry_text ) || strlen( ltrim( $expiry_text, '0' ) ) > self::MAX_EXPIRY_DIGITS ) {
			return null;
		}
		$expiry = (int) $expiry_text; // As the daemon does: "0017..." is 17...
		if ( $expiry <= ( null === $now ? time() : $now ) ) {
			return null;
		}
		if ( ! hash_equals( self::signature( $secret, $client_id, $expiry ), $signature ) ) {
			return null;
		}
		return $client_id;
	}

	/**
	 * A cookie value for $client_id (what the daemon sets; for tests and tooling).
	 *
	 * @param string   $secret    The token secret.
	 * @param string   $client_id The daemon clientId.
	 * @param int|null $now       Unix seconds (default: time()).
	 * @param int      $lifetime  Seconds until it expires.
	 */
	public static function mint( string $secret, string $client_id, ?int $now = null, int $lifetime = self::LIFETIME ): string {
		$expiry = ( null === $now ? time() : $now ) + $lifetime;
		return $client_id . '.' . $expiry . '.' . self::signature( $secret, $client_id, $expiry );
	}

	/**
	 * The clientId proven by this request's cookie, or null.
	 *
	 * @param string     $secret  The token secret ('' proves nothing).
	 * @param array|null $cookies The request's cookies (default: $_COOKIE, unslashed inside WordPress).
	 */
	public static function from_request( string $secret, ?array $cookies = null ): ?string {
		if ( null === $cookies ) {
			$cookies = $_COOKIE; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput -- verified below, never printed.
			$unslash = function_exists( 'wp_unslash' );
		} else {
			$unslash = false;
		}
		if ( ! isset( $cookies[ self::NAME ] ) || ! is_string( $cookies[ self::NAME ] ) ) {
			return null;
		}
		$value = $unslash ? wp_unslash( $cookies[ self::NAME ] ) : $cookies[ self::NAME ];
		return self::verify( $secret, (string) $value );
	}

	/**
	 * Unpadded base64url of HMAC-SHA256(secret, LABEL . "<clientId>.<expiry>").
	 *
	 * @param string $secret    Secret.
	 * @param string $client_id ClientId.
	 * @param int    $expiry    Unix seconds.
	 */
	private static function signature( string $secret, string $client_id, int $expiry ): string {
		$mac = hash_hmac( 'sha256', self::LABEL . $client_id . '.' . $expiry, $secret, true );
		return rtrim( strtr( base64_encode( $mac ), '+/', '-_' ), '=' );
	}
}
