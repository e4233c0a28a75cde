<?php
/**
 * AppointEase_RT_Jwt: HS256 connection tokens (RFC 7519 / RFC 7515).
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

final class JwtTest extends TestCase {

	private const SECRET = 'test-token-secret-0123456789abcdef0123456789';
	private const NOW    = 1772355600; // 2026-03-01T09:00:00Z.

	/*
	 * The HS256 example of jwt.io (also what PyJWT produces for these claims
	 * and this secret): a fixed vector for the header, the payload encoding
	 * and the signature.
	 */
	private const VECTOR_SECRET = 'your-256-bit-secret';
	private const VECTOR_TOKEN  = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';

	private function claims( array $overrides = array() ): array {
		return array_merge(
			array(
				'sub'   => 'wp:7',
				'email' => 'zoe@example.org',
				'role'  => 'customer',
				'aud'   => 'appointease-realtime',
				'iat'   => self::NOW,
				'exp'   => self::NOW + 3600,
			),
			$overrides
		);
	}

	private function decode( string $token, int $now = self::NOW, string $secret = self::SECRET, string $audience = 'appointease-realtime' ): array {
		return AppointEase_RT_Jwt::decode( $token, $secret, $audience, 30, $now );
	}

	private function assertRefused( string $reason, callable $call ): void {
		try {
			$call();
			$this->fail( 'the token was accepted; expected ' . $reason );
		} catch ( AppointEase_RT_Jwt_Error $e ) {
			$this->assertSame( $reason, $e->reason, $e->getMessage() );
		}
	}

	/** Builds a token from raw header/payload arrays, signed with $secret (or with $signature). */
	private function forge( array $header, array $payload, string $secret = self::SECRET, ?string $signature = null ): string {
		$h = AppointEase_RT_Jwt::b64url_encode( (string) json_encode( $header ) );
		$p = AppointEase_RT_Jwt::b64url_encode( (string) json_encode( $payload ) );
		$s = $signature ?? AppointEase_RT_Jwt::b64url_encode( hash_hmac( 'sha256', "$h.$p", $secret, true ) );
		return "$h.$p.$s";
	}

	public function test_known_vector_encodes_exactly(): void {
		$token = AppointEase_RT_Jwt::encode(
			array(
				'sub'  => '1234567890',
				'name' => 'John Doe',
				'iat'  => 1516239022,
			),
			self::VECTOR_SECRET
		);
		$this->assertSame( self::VECTOR_TOKEN, $token );
		// Its signature is right, but it has no exp and no aud: refused as a connection token.
		$this->assertRefused( 'bad_claims', fn() => AppointEase_RT_Jwt::decode( self::VECTOR_TOKEN, self::VECTOR_SECRET, 'appointease-realtime', 30, 1516239022 ) );
	}

	public function test_round_trip(): void {
		$token = AppointEase_RT_Jwt::encode( $this->claims( array( 'email' => 'zoë/café@example.org' ) ), self::SECRET );
		$this->assertMatchesRegularExpression( '/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/', $token, 'base64url, no padding' );
		$this->assertSame( $this->claims( array( 'email' => 'zoë/café@example.org' ) ), $this->decode( $token ) );
		$header = json_decode( (string) AppointEase_RT_Jwt::b64url_decode( explode( '.', $token )[0] ), true );
		$this->assertSame( array( 'alg' => 'HS256', 'typ' => 'JWT' ), $header );
	}

	public function test_issue_sets_the_bridge_claims(): void {
		$issued = AppointEase_RT_Jwt::issue( self::SECRET, 'customer:zoe@example.org', ' Zoe@Example.ORG ', 'customer', 3600, self::NOW );
		$this->assertSame( self::NOW + 3600, $issued['expires_at'] );
		$this->assertSame( 3600, $issued['lifetime'] );
		$this->assertSame(
			array(
				'sub'   => 'customer:zoe@example.org',
				'email' => 'zoe@example.org',
				'role'  => 'customer',
				'aud'   => 'appointease-realtime',
				'iat'   => self::NOW,
				'exp'   => self::NOW + 3600,
			),
			$this->decode( $issued['token'] )
		);
		foreach ( array( 'staff', 'admin' ) as $role ) {
			$this->assertSame( $role, $this->decode( AppointEase_RT_Jwt::issue( self::SECRET, 'wp:1', 'a@example.org', $role, 3600, self::NOW )['token'] )['role'] );
		}
		$this->expectException( InvalidArgumentException::class );
		AppointEase_RT_Jwt::issue( self::SECRET, 'wp:1', 'a@example.org', 'superuser', 3600, self::NOW );
	}

	public function test_lifetime_is_clamped_to_12_hours_and_at_least_a_minute(): void {
		$this->assertSame( 3600, AppointEase_RT_Jwt::DEFAULT_LIFETIME );
		$long = AppointEase_RT_Jwt::issue( self::SECRET, 'wp:1', 'a@example.org', 'admin', 48 * 3600, self::NOW );
		$this->assertSame( 43200, $long['lifetime'] );
		$claims = $this->decode( $long['token'] );
		$this->assertSame( 43200, $claims['exp'] - $claims['iat'] );
		$short = AppointEase_RT_Jwt::issue( self::SECRET, 'wp:1', 'a@example.org', 'admin', -5, self::NOW );
		$this->assertSame( 60, $short['lifetime'] );
		$this->assertSame( 43200, AppointEase_RT_Jwt::clamp_lifetime( PHP_INT_MAX ) );
	}

	public function test_longer_than_12_hours_is_refused_on_decode(): void {
		$ok = AppointEase_RT_Jwt::encode( $this->claims( array( 'exp' => self::NOW + 43200 ) ), self::SECRET );
		$this->assertSame( self::NOW + 43200, $this->decode( $ok )['exp'] );
		$long = AppointEase_RT_Jwt::encode( $this->claims( array( 'exp' => self::NOW + 43201 ) ), self::SECRET );
		$this->assertRefused( 'too_long', fn() => $this->decode( $long ) );
	}

	public function test_tampering_is_detected(): void {
		$token                          = AppointEase_RT_Jwt::encode( $this->claims(), self::SECRET );
		list( $header, $payload, $sig ) = explode( '.', $token );

		// Promote oneself to admin, keep the signature.
		$admin = AppointEase_RT_Jwt::b64url_encode( (string) json_encode( $this->claims( array( 'role' => 'admin' ) ) ) );
		$this->assertRefused( 'bad_signature', fn() => $this->decode( "$header.$admin.$sig" ) );
		// Another e-mail.
		$other = AppointEase_RT_Jwt::b64url_encode( (string) json_encode( $this->claims( array( 'email' => 'victim@example.org' ) ) ) );
		$this->assertRefused( 'bad_signature', fn() => $this->decode( "$header.$other.$sig" ) );
		// One flipped signature character.
		$flipped = substr( $sig, 0, 10 ) . ( 'A' === $sig[10] ? 'B' : 'A' ) . substr( $sig, 11 );
		$this->assertRefused( 'bad_signature', fn() => $this->decode( "$header.$payload.$flipped" ) );
		// A truncated signature.
		$this->assertRefused( 'bad_signature', fn() => $this->decode( "$header.$payload." . substr( $sig, 0, 42 ) ) );
		// The right token, the wrong secret.
		$this->assertRefused( 'bad_signature', fn() => $this->decode( $token, self::NOW, 'another-secret-of-at-least-32-bytes!!' ) );
		// Signed with the right secret but the payload swapped in from another token.
		$swapped = explode( '.', AppointEase_RT_Jwt::encode( $this->claims( array( 'sub' => 'wp:1' ) ), self::SECRET ) )[1];
		$this->assertRefused( 'bad_signature', fn() => $this->decode( "$header.$swapped.$sig" ) );
	}

	public function test_malformed_tokens_are_refused(): void {
		$token = AppointEase_RT_Jwt::encode( $this->claims(), self::SECRET );
		foreach ( array( '', 'abc', 'a.b', 'a.b.c.d', $token . '=', $token . ' ', ' ' . $token, str_replace( '-', '+', $token ) . '+/', str_repeat( 'a', 9000 ) . '.b.c' ) as $bad ) {
			$this->assertRefused( 'malformed', fn() => $this->decode( $bad ) );
		}
		// Padding inside a segment.
		list( $h, $p, $s ) = explode( '.', $token );
		$this->assertRefused( 'malformed', fn() => $this->decode( "$h.$p=.$s" ) );
		// A header that is not JSON.
		$this->assertRefused( 'bad_header', fn() => $this->decode( AppointEase_RT_Jwt::b64url_encode( 'not json' ) . ".$p.$s" ) );
		// A payload that is a JSON list, correctly signed.
		$h2   = AppointEase_RT_Jwt::b64url_encode( '{"alg":"HS256","typ":"JWT"}' );
		$p2   = AppointEase_RT_Jwt::b64url_encode( '[1,2]' );
		$sig2 = AppointEase_RT_Jwt::b64url_encode( hash_hmac( 'sha256', "$h2.$p2", self::SECRET, true ) );
		$this->assertRefused( 'bad_claims', fn() => $this->decode( "$h2.$p2.$sig2" ) );
	}

	public function test_alg_none_and_other_algorithms_are_refused(): void {
		$claims = $this->claims( array( 'role' => 'admin' ) );
		// RFC 7519 section 6.1 unsecured JWT: "alg": "none" and an empty signature.
		$h    = AppointEase_RT_Jwt::b64url_encode( '{"alg":"none","typ":"JWT"}' );
		$p    = AppointEase_RT_Jwt::b64url_encode( (string) json_encode( $claims ) );
		$this->assertRefused( 'malformed', fn() => $this->decode( "$h.$p." ) );
		// ... and with some signature bytes, so the header check itself is what refuses it.
		$this->assertRefused( 'unsupported_alg', fn() => $this->decode( $this->forge( array( 'alg' => 'none' ), $claims ) ) );
		foreach ( array( 'None', 'NONE', 'HS512', 'HS384', 'hs256', 'RS256', 'ES256', 'PS256', '' ) as $alg ) {
			$this->assertRefused( 'unsupported_alg', fn() => $this->decode( $this->forge( array( 'alg' => $alg, 'typ' => 'JWT' ), $claims ) ) );
		}
		$this->assertRefused( 'unsupported_alg', fn() => $this->decode( $this->forge( array( 'typ' => 'JWT' ), $claims ) ) );
		$this->assertRefused( 'unsupported_alg', fn() => $this->decode( $this->forge( array( 'alg' => array( 'HS256' ) ), $claims ) ) );
		// A correct HS512 MAC with the same secret is refused too (no algorithm switching).
		$h512 = AppointEase_RT_Jwt::b64url_encode( '{"alg":"HS512","typ":"JWT"}' );
		$s512 = AppointEase_RT_Jwt::b64url_encode( hash_hmac( 'sha512', "$h512.$p", self::SECRET, true ) );
		$this->assertRefused( 'unsupported_alg', fn() => $this->decode( "$h512.$p.$s512" ) );
		// Unknown critical extensions and a wrong typ.
		$this->assertRefused( 'bad_header', fn() => $this->decode( $this->forge( array( 'alg' => 'HS256', 'crit' => array( 'exp' ) ), $claims ) ) );
		$this->assertRefused( 'bad_header', fn() => $this->decode( $this->forge( array( 'alg' => 'HS256', 'typ' => 'JWE' ), $claims ) ) );
		// Without typ, or typ in lower case, HS256 is fine.
		$this->assertSame( 'admin', $this->decode( $this->forge( array( 'alg' => 'HS256' ), $claims ) )['role'] );
		$this->assertSame( 'admin', $this->decode( $this->forge( array( 'alg' => 'HS256', 'typ' => 'jwt' ), $claims ) )['role'] );
	}

	public function test_expiry_with_small_leeway(): void {
		$token = AppointEase_RT_Jwt::encode( $this->claims(), self::SECRET );
		$exp   = self::NOW + 3600;
		$this->assertSame( 'wp:7', $this->decode( $token, $exp - 1 )['sub'] );
		$this->assertSame( 'wp:7', $this->decode( $token, $exp + 29 )['sub'], 'within the 30 s leeway' );
		$this->assertRefused( 'expired', fn() => $this->decode( $token, $exp + 30 ) );
		$this->assertRefused( 'expired', fn() => $this->decode( $token, $exp + 86400 ) );
		// Default clock: a 2026 token is expired... or not yet valid, depending on today.
		try {
			AppointEase_RT_Jwt::decode( AppointEase_RT_Jwt::encode( $this->claims( array( 'iat' => 1000, 'exp' => 2000 ) ), self::SECRET ), self::SECRET );
			$this->fail( 'a 1970 token was accepted' );
		} catch ( AppointEase_RT_Jwt_Error $e ) {
			$this->assertSame( 'expired', $e->reason );
		}
	}

	public function test_not_yet_valid(): void {
		$future = AppointEase_RT_Jwt::encode( $this->claims( array( 'iat' => self::NOW + 31, 'exp' => self::NOW + 3600 ) ), self::SECRET );
		$this->assertRefused( 'not_yet_valid', fn() => $this->decode( $future ) );
		$skewed = AppointEase_RT_Jwt::encode( $this->claims( array( 'iat' => self::NOW + 30 ) ), self::SECRET );
		$this->assertSame( 'wp:7', $this->decode( $skewed )['sub'], 'within the leeway' );
		$nbf = AppointEase_RT_Jwt::encode( $this->claims( array( 'nbf' => self::NOW + 600 ) ), self::SECRET );
		$this->assertRefused( 'not_yet_valid', fn() => $this->decode( $nbf ) );
		$this->assertSame( 'wp:7', $this->decode( $nbf, self::NOW + 600 )['sub'] );
	}

	public function test_required_and_numeric_time_claims(): void {
		foreach ( array( 'exp', 'iat' ) as $name ) {
			$claims = $this->claims();
			unset( $claims[ $name ] );
			$this->assertRefused( 'bad_claims', fn() => $this->decode( AppointEase_RT_Jwt::encode( $claims, self::SECRET ) ) );
			$this->assertRefused( 'bad_claims', fn() => $this->decode( AppointEase_RT_Jwt::encode( $this->claims( array( $name => (string) self::NOW ) ), self::SECRET ) ) );
			$this->assertRefused( 'bad_claims', fn() => $this->decode( AppointEase_RT_Jwt::encode( $this->claims( array( $name => true ) ), self::SECRET ) ) );
		}
		$this->assertRefused( 'bad_claims', fn() => $this->decode( AppointEase_RT_Jwt::encode( $this->claims( array( 'nbf' => 'soon' ) ), self::SECRET ) ) );
		// Float times (PyJWT accepts them) are fine.
		$float = AppointEase_RT_Jwt::encode( $this->claims( array( 'iat' => self::NOW + 0.5, 'exp' => self::NOW + 60.5 ) ), self::SECRET );
		$this->assertSame( 'wp:7', $this->decode( $float )['sub'] );
	}

	public function test_wrong_or_missing_audience(): void {
		$this->assertRefused( 'bad_audience', fn() => $this->decode( AppointEase_RT_Jwt::encode( $this->claims( array( 'aud' => 'another-service' ) ), self::SECRET ) ) );
		$this->assertRefused( 'bad_audience', fn() => $this->decode( AppointEase_RT_Jwt::encode( $this->claims( array( 'aud' => array( 'a', 'b' ) ) ), self::SECRET ) ) );
		$this->assertRefused( 'bad_audience', fn() => $this->decode( AppointEase_RT_Jwt::encode( $this->claims( array( 'aud' => 'Appointease-Realtime' ) ), self::SECRET ) ) );
		$claims = $this->claims();
		unset( $claims['aud'] );
		$this->assertRefused( 'bad_audience', fn() => $this->decode( AppointEase_RT_Jwt::encode( $claims, self::SECRET ) ) );
		// The right token, decoded for another audience.
		$token = AppointEase_RT_Jwt::encode( $this->claims(), self::SECRET );
		$this->assertRefused( 'bad_audience', fn() => $this->decode( $token, self::NOW, self::SECRET, 'other' ) );
		// A list that contains ours is fine (RFC 7519 section 4.1.3).
		$list = AppointEase_RT_Jwt::encode( $this->claims( array( 'aud' => array( 'other', 'appointease-realtime' ) ) ), self::SECRET );
		$this->assertSame( 'wp:7', $this->decode( $list )['sub'] );
	}

	public function test_bad_arguments(): void {
		foreach ( array( array( array( 'a', 'b' ), self::SECRET ), array( $this->claims(), '' ) ) as $args ) {
			try {
				AppointEase_RT_Jwt::encode( ...$args );
				$this->fail( 'encode accepted bad arguments' );
			} catch ( InvalidArgumentException $e ) {
				$this->addToAssertionCount( 1 );
			}
		}
		$token = AppointEase_RT_Jwt::encode( $this->claims(), self::SECRET );
		$this->assertRefused( 'bad_signature', fn() => AppointEase_RT_Jwt::decode( $token, '', 'appointease-realtime', 30, self::NOW ) );
		$this->assertSame( '{}', (string) AppointEase_RT_Jwt::b64url_decode( explode( '.', AppointEase_RT_Jwt::encode( array(), self::SECRET ) )[1] ) );
	}

	public function test_b64url_is_canonical(): void {
		$this->assertSame( 'AQID', AppointEase_RT_Jwt::b64url_encode( "\x01\x02\x03" ) );
		$this->assertSame( '-_8', AppointEase_RT_Jwt::b64url_encode( "\xfb\xff" ) );
		$this->assertSame( "\xfb\xff", AppointEase_RT_Jwt::b64url_decode( '-_8' ) );
		$this->assertNull( AppointEase_RT_Jwt::b64url_decode( '-_9' ), 'non-zero trailing bits' );
		$this->assertNull( AppointEase_RT_Jwt::b64url_decode( 'AQID=' ) );
		$this->assertNull( AppointEase_RT_Jwt::b64url_decode( 'A' ) );
		$this->assertNull( AppointEase_RT_Jwt::b64url_decode( '+/8' ) );
	}

	public function test_config_requires_a_32_byte_secret(): void {
		$this->assertFalse( ( new AppointEase_RT_Config( '', '', '' ) )->can_issue_tokens() );
		$this->assertFalse( ( new AppointEase_RT_Config( '', '', '', str_repeat( 'x', 31 ) ) )->can_issue_tokens() );
		$ok = new AppointEase_RT_Config( '', 'wss://example.com/realtime/', '', ' ' . AppointEase_RT_Jwt::generate_secret() . ' ' );
		$this->assertTrue( $ok->can_issue_tokens() );
		$this->assertSame( array(), $ok->token_problems() );
		$this->assertSame( 64, strlen( $ok->token_secret ) );
		$this->assertSame( 'wss://example.com/realtime', $ok->usable_public_url() );
		$this->assertCount( 1, ( new AppointEase_RT_Config( '', '', '', 'short' ) )->token_problems() );
	}
}
