<?php
/**
 * Connection tokens: a small JWT (RFC 7519) codec, HS256 only.
 *
 * The daemon verifies these tokens with PyJWT
 * (jwt.decode(token, secret, algorithms=["HS256"], audience="appointease-realtime")).
 * Compact form "base64url(header).base64url(payload).base64url(signature)",
 * base64url without padding (RFC 7515 section 2), signature =
 * HMAC-SHA256(secret, "<header>.<payload>") with the secret's bytes as they
 * are (PyJWT uses a str secret's UTF-8 bytes the same way).
 *
 * decode() accepts only {"alg": "HS256"}: "none", RS256, HS512... are refused
 * before any key is used, so no algorithm-confusion trick applies. Signatures
 * are compared with hash_equals(). exp, iat and aud are required.
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
 * Why a token was refused. getMessage() is for logs; $reason is machine-readable:
 * malformed | bad_header | unsupported_alg | bad_signature | bad_claims |
 * expired | not_yet_valid | bad_audience | too_long.
 */
final class AppointEase_RT_Jwt_Error extends RuntimeException {

	/** @var string */
	public $reason;

	/**
	 * @param string $reason  Machine-readable reason.
	 * @param string $message Human-readable detail.
	 */
	public function __construct( string $reason, string $message ) {
		parent::__construct( $message );
		$this->reason = $reason;
	}
}

/**
 * HS256 JWT encode/decode plus the bridge's token policy (issue()).
 */
final class AppointEase_RT_Jwt {

	const ALG              = 'HS256';
	const AUDIENCE         = 'appointease-realtime';
	const ROLES            = array( 'customer', 'staff', 'admin' );
	const DEFAULT_LIFETIME = 3600;      // 1 h.
	const MIN_LIFETIME     = 60;        // 1 min.
	const MAX_LIFETIME     = 43200;     // 12 h: longer tokens are neither issued nor accepted.
	const DEFAULT_LEEWAY   = 30;        // Seconds of clock skew tolerated on exp/iat/nbf.
	const MIN_SECRET_BYTES = 32;        // 256 bits, the HS256 key size (RFC 7518 section 3.2).
	const MAX_TOKEN_LENGTH = 8192;

	/**
	 * Signs claims into a compact JWT.
	 *
	 * @param array<string,mixed> $claims Payload (a JSON object).
	 * @param string              $secret Shared secret (its bytes are the HMAC key).
	 * @return string header.payload.signature
	 * @throws InvalidArgumentException On an empty secret or claims that are not a JSON object.
	 */
	public static function encode( array $claims, string $secret ): string {
		if ( '' === $secret ) {
			throw new InvalidArgumentException( 'The token secret must not be empty.' );
		}
		if ( array() !== $claims && array_keys( $claims ) === range( 0, count( $claims ) - 1 ) ) {
			throw new InvalidArgumentException( 'JWT claims must be a JSON object, not a list.' );
		}
		$header  = self::b64url_encode( self::json( array( 'alg' => self::ALG, 'typ' => 'JWT' ) ) );
		$payload = self::b64url_encode( self::json( (object) $claims ) );
		$signing = $header . '.' . $payload;
		return $signing . '.' . self::b64url_encode( hash_hmac( 'sha256', $signing, $secret, true ) );
	}

	/**
	 * Verifies a compact JWT and returns its claims.
	 *
	 * Checks, in order: three base64url segments (no padding), header
	 * {"alg": "HS256"} (typ "JWT" if present, no "crit"), the HMAC in constant
	 * time, then the claims: exp and iat required and numeric, exp not past
	 * (exp > now - leeway, as PyJWT), iat and nbf not in the future
	 * (<= now + leeway), exp - iat at most 12 h, aud (string or list) contains
	 * $audience.
	 *
	 * @param string   $token    The token.
	 * @param string   $secret   Shared secret.
	 * @param string   $audience Required audience, default "appointease-realtime".
	 * @param int      $leeway   Clock skew tolerated, seconds.
	 * @param int|null $now      Current unix time (tests), default time().
	 * @return array<string,mixed> Claims.
	 * @throws AppointEase_RT_Jwt_Error When the token is refused.
	 */
	public static function decode( string $token, string $secret, string $audience = self::AUDIENCE, int $leeway = self::DEFAULT_LEEWAY, ?int $now = null ): array {
		if ( '' === $secret ) {
			throw new AppointEase_RT_Jwt_Error( 'bad_signature', 'No token secret is configured.' );
		}
		if ( strlen( $token ) > self::MAX_TOKEN_LENGTH || 1 !== preg_match( '/^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/D', $token, $parts ) ) {
			throw new AppointEase_RT_Jwt_Error( 'malformed', 'A token is three base64url segments joined by ".".' );
		}
		list( , $header_b64, $payload_b64, $signature_b64 ) = $parts;

		$header = self::json_object( self::b64url_decode( $header_b64 ) );
		if ( null === $header ) {
			throw new AppointEase_RT_Jwt_Error( 'bad_header', 'The token header is not a JSON object.' );
		}
		if ( ! isset( $header['alg'] ) || self::ALG !== $header['alg'] ) {
			$alg = isset( $header['alg'] ) && is_string( $header['alg'] ) ? $header['alg'] : '(missing)';
			throw new AppointEase_RT_Jwt_Error( 'unsupported_alg', 'Only HS256 tokens are accepted, not ' . $alg . '.' );
		}
		if ( isset( $header['typ'] ) && ( ! is_string( $header['typ'] ) || 'JWT' !== strtoupper( $header['typ'] ) ) ) {
			throw new AppointEase_RT_Jwt_Error( 'bad_header', 'The token type must be JWT.' );
		}
		if ( array_key_exists( 'crit', $header ) ) {
			throw new AppointEase_RT_Jwt_Error( 'bad_header', 'Critical header extensions are not supported.' );
		}

		$signature = self::b64url_decode( $signature_b64 );
		$expected  = hash_hmac( 'sha256', $header_b64 . '.' . $payload_b64, $secret, true );
		if ( null === $signature || ! hash_equals( $expected, $signature ) ) {
			throw new AppointEase_RT_Jwt_Error( 'bad_signature', 'The token signature does not match.' );
		}

		$claims = self::json_object( self::b64url_decode( $payload_b64 ) );
		if ( null === $claims ) {
			throw new AppointEase_RT_Jwt_Error( 'bad_claims', 'The token payload is not a JSON object.' );
		}
		self::check_claims( $claims, $audience, $leeway, null === $now ? time() : $now );
		return $claims;
	}

	/**
	 * Issues a connection token with the bridge's claims.
	 *
	 * @param string   $secret   Shared secret (APPOINTEASE_RT_TOKEN_SECRET).
	 * @param string   $sub      "wp:<user id>" or "customer:<email>".
	 * @param string   $email    The person's e-mail (lower-cased here).
	 * @param string   $role     customer | staff | admin.
	 * @param int      $lifetime Seconds; clamped to 60 s .. 12 h.
	 * @param int|null $now      Current unix time (tests), default time().
	 * @return array{token: string, claims: array<string,mixed>, expires_at: int, lifetime: int}
	 * @throws InvalidArgumentException On an unknown role, an empty sub or an empty secret.
	 */
	public static function issue( string $secret, string $sub, string $email, string $role, int $lifetime = self::DEFAULT_LIFETIME, ?int $now = null ): array {
		if ( ! in_array( $role, self::ROLES, true ) ) {
			throw new InvalidArgumentException( 'Unknown role ' . $role . '.' );
		}
		if ( '' === $sub ) {
			throw new InvalidArgumentException( 'The token subject must not be empty.' );
		}
		$lifetime = self::clamp_lifetime( $lifetime );
		$now      = null === $now ? time() : $now;
		$claims   = array(
			'sub'   => $sub,
			'email' => strtolower( trim( $email ) ),
			'role'  => $role,
			'aud'   => self::AUDIENCE,
			'iat'   => $now,
			'exp'   => $now + $lifetime,
		);
		return array(
			'token'      => self::encode( $claims, $secret ),
			'claims'     => $claims,
			'expires_at' => $now + $lifetime,
			'lifetime'   => $lifetime,
		);
	}

	/**
	 * A lifetime within MIN_LIFETIME .. MAX_LIFETIME.
	 *
	 * @param int $lifetime Requested seconds.
	 */
	public static function clamp_lifetime( int $lifetime ): int {
		return max( self::MIN_LIFETIME, min( self::MAX_LIFETIME, $lifetime ) );
	}

	/**
	 * Creates a random secret: 64 hex characters (32 random bytes).
	 */
	public static function generate_secret(): string {
		return bin2hex( random_bytes( 32 ) );
	}

	/**
	 * base64url without padding.
	 *
	 * @param string $bytes Raw bytes.
	 */
	public static function b64url_encode( string $bytes ): string {
		return rtrim( strtr( base64_encode( $bytes ), '+/', '-_' ), '=' ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
	}

	/**
	 * Decodes base64url without padding; null when it is not canonical base64url.
	 *
	 * @param string $text Encoded text.
	 */
	public static function b64url_decode( string $text ): ?string {
		if ( 1 !== preg_match( '/^[A-Za-z0-9_-]*$/D', $text ) || 1 === strlen( $text ) % 4 ) {
			return null;
		}
		$bytes = base64_decode( strtr( $text, '-_', '+/' ), true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode
		if ( false === $bytes || self::b64url_encode( $bytes ) !== $text ) {
			return null; // Non-zero trailing bits: another spelling of the same bytes.
		}
		return $bytes;
	}

	/**
	 * Claim checks (see decode()).
	 *
	 * @param array<string,mixed> $claims   Claims.
	 * @param string              $audience Required audience.
	 * @param int                 $leeway   Seconds.
	 * @param int                 $now      Unix time.
	 * @throws AppointEase_RT_Jwt_Error When a claim is missing or wrong.
	 */
	private static function check_claims( array $claims, string $audience, int $leeway, int $now ): void {
		foreach ( array( 'exp', 'iat' ) as $name ) {
			if ( ! isset( $claims[ $name ] ) || ! is_int( $claims[ $name ] ) && ! is_float( $claims[ $name ] ) ) {
				throw new AppointEase_RT_Jwt_Error( 'bad_claims', 'The token has no numeric "' . $name . '" claim.' );
			}
		}
		if ( isset( $claims['nbf'] ) && ! is_int( $claims['nbf'] ) && ! is_float( $claims['nbf'] ) ) {
			throw new AppointEase_RT_Jwt_Error( 'bad_claims', 'The "nbf" claim must be numeric.' );
		}
		if ( $claims['exp'] <= $now - $leeway ) {
			throw new AppointEase_RT_Jwt_Error( 'expired', 'The token has expired.' );
		}
		if ( $claims['iat'] > $now + $leeway || ( isset( $claims['nbf'] ) && $claims['nbf'] > $now + $leeway ) ) {
			throw new AppointEase_RT_Jwt_Error( 'not_yet_valid', 'The token is not valid yet.' );
		}
		if ( $claims['exp'] - $claims['iat'] > self::MAX_LIFETIME ) {
			throw new AppointEase_RT_Jwt_Error( 'too_long', 'The token lives longer than 12 hours.' );
		}
		$aud = $claims['aud'] ?? null;
		$aud = is_string( $aud ) ? array( $aud ) : $aud;
		if ( ! is_array( $aud ) || ! in_array( $audience, $aud, true ) ) {
			throw new AppointEase_RT_Jwt_Error( 'bad_audience', 'The token is not meant for ' . $audience . '.' );
		}
	}

	/**
	 * JSON text of a value (slashes unescaped, as PyJWT would write it compactly).
	 *
	 * @param mixed $value Value.
	 * @throws InvalidArgumentException When the value cannot be encoded.
	 */
	private static function json( $value ): string {
		$json = json_encode( $value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE ); // phpcs:ignore WordPress.WP.AlternativeFunctions.json_encode_json_encode
		if ( false === $json ) {
			throw new InvalidArgumentException( 'JWT claims are not JSON-encodable: ' . json_last_error_msg() );
		}
		return $json;
	}

	/**
	 * Decodes a JSON object to an array; null for anything else.
	 *
	 * @param string|null $json Text.
	 * @return array<string,mixed>|null
	 */
	private static function json_object( ?string $json ): ?array {
		if ( null === $json || 0 !== strpos( ltrim( $json ), '{' ) ) {
			return null;
		}
		$value = json_decode( $json, true, 32 );
		return is_array( $value ) ? $value : null;
	}
}

