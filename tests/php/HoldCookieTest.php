<?php
/**
 * AppointEase_RT_Hold_Cookie: the daemon's hold cookie, verified with exactly its rules.
 * (tests/test_bridge_cookie_interop.py checks PHP against the daemon's Python both ways.)
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

final class HoldCookieTest extends TestCase {

	private const SECRET = 'test-token-secret-of-at-least-32-characters';

	/** The signature computed independently of the class, from the format's definition. */
	private static function expected_signature( string $secret, string $client_id, int $expiry ): string {
		$mac = hash_hmac( 'sha256', 'appointease-rt-hold-cookie:v1:' . $client_id . '.' . $expiry, $secret, true );
		return rtrim( strtr( base64_encode( $mac ), '+/', '-_' ), '=' );
	}

	public function test_mint_follows_the_format_and_verify_returns_the_client_id(): void {
		$value = AppointEase_RT_Hold_Cookie::mint( self::SECRET, 'anonymous_1_abc', 1000 );
		$this->assertSame( 'anonymous_1_abc.87400.' . self::expected_signature( self::SECRET, 'anonymous_1_abc', 87400 ), $value );
		$this->assertMatchesRegularExpression( '/^anonymous_1_abc\.87400\.[A-Za-z0-9_-]{43}$/', $value, 'unpadded base64url' );
		$this->assertSame( 'anonymous_1_abc', AppointEase_RT_Hold_Cookie::verify( self::SECRET, $value, 1001 ) );
		$this->assertSame( 'anonymous_1_abc', AppointEase_RT_Hold_Cookie::verify( self::SECRET, $value, 87399 ) );
		$this->assertSame( 'appointease_rt_hold', AppointEase_RT_Hold_Cookie::NAME );
	}

	public function test_the_client_id_is_everything_before_the_last_two_dots(): void {
		foreach ( array( 'a.b.c', 'user_1761527416882_q0q2y9pwf', 'x.', '.x', 'wp:42.1' ) as $client_id ) {
			$value = AppointEase_RT_Hold_Cookie::mint( self::SECRET, $client_id, 1000 );
			$this->assertSame( $client_id, AppointEase_RT_Hold_Cookie::verify( self::SECRET, $value, 1001 ), $client_id );
		}
	}

	public function test_an_expired_cookie_proves_nothing(): void {
		$value = AppointEase_RT_Hold_Cookie::mint( self::SECRET, 'anonymous_1_abc', 1000, 60 );
		$this->assertSame( 'anonymous_1_abc', AppointEase_RT_Hold_Cookie::verify( self::SECRET, $value, 1059 ) );
		$this->assertNull( AppointEase_RT_Hold_Cookie::verify( self::SECRET, $value, 1060 ), 'expiry <= now' );
		$this->assertNull( AppointEase_RT_Hold_Cookie::verify( self::SECRET, $value, 5000 ) );
		// The real clock by default.
		$this->assertNull( AppointEase_RT_Hold_Cookie::verify( self::SECRET, AppointEase_RT_Hold_Cookie::mint( self::SECRET, 'c', time() - 100, 60 ) ) );
		$this->assertSame( 'c', AppointEase_RT_Hold_Cookie::verify( self::SECRET, AppointEase_RT_Hold_Cookie::mint( self::SECRET, 'c' ) ) );
	}

	public function test_forged_and_foreign_cookies_prove_nothing(): void {
		$value                                  = AppointEase_RT_Hold_Cookie::mint( self::SECRET, 'anonymous_1_abc', 1000 );
		list( $client_id, $expiry, $signature ) = explode( '.', $value );
		$flipped                                = ( 'A' === $signature[0] ? 'B' : 'A' ) . substr( $signature, 1 );
		$forged                                 = array(
			'another client id'     => "anonymous_2_xyz.$expiry.$signature",
			'a later expiry'        => "$client_id." . ( (int) $expiry + 9 ) . ".$signature",
			'a changed signature'   => "$client_id.$expiry.$flipped",
			'no signature'          => "$client_id.$expiry.",
			'a padded signature'    => "$value=",
			'the MAC in hex'        => "$client_id.$expiry." . hash_hmac( 'sha256', "appointease-rt-hold-cookie:v1:$client_id.$expiry", self::SECRET ),
			'a MAC without label'   => "$client_id.$expiry." . rtrim( strtr( base64_encode( hash_hmac( 'sha256', "$client_id.$expiry", self::SECRET, true ) ), '+/', '-_' ), '=' ),
			'another site\'s secret' => AppointEase_RT_Hold_Cookie::mint( 'another-site-secret-of-32-characters!', 'anonymous_1_abc', 1000 ),
		);
		foreach ( $forged as $what => $candidate ) {
			$this->assertNull( AppointEase_RT_Hold_Cookie::verify( self::SECRET, $candidate, 1001 ), $what );
		}
		$this->assertNull( AppointEase_RT_Hold_Cookie::verify( '', $value, 1001 ), 'no secret, no proof' );
		$this->assertNull( AppointEase_RT_Hold_Cookie::verify( '', AppointEase_RT_Hold_Cookie::mint( '', 'c', 1000 ), 1001 ) );
	}

	public function test_malformed_values_prove_nothing(): void {
		$signature = self::expected_signature( self::SECRET, 'c', 99999 );
		$junk      = array( '', 'a', 'a.b', 'a.b.c', '..', '...', ".99999.$signature", "c.-99999.$signature", "c.+99999.$signature",
			"c. 99999.$signature", "c.99999 .$signature", "c.9.9e4.$signature", "c.0x1869F.$signature", "c..$signature",
			'c.' . str_repeat( '9', 30 ) . '.' . $signature, str_repeat( 'x', 500 ) );
		foreach ( $junk as $value ) {
			$this->assertNull( AppointEase_RT_Hold_Cookie::verify( self::SECRET, $value, 1000 ), $value );
		}
		// Leading zeros name the same expiry, as int() does in the daemon.
		$this->assertSame( 'c', AppointEase_RT_Hold_Cookie::verify( self::SECRET, "c.0099999.$signature", 1000 ) );
	}

	public function test_values_over_400_characters_are_refused(): void {
		$fits  = AppointEase_RT_Hold_Cookie::mint( self::SECRET, str_repeat( 'a', 400 - 1 - 5 - 1 - 43 ), 1000 );
		$over  = AppointEase_RT_Hold_Cookie::mint( self::SECRET, str_repeat( 'a', 400 - 1 - 5 - 1 - 43 + 1 ), 1000 );
		$this->assertSame( 400, strlen( $fits ) );
		$this->assertSame( 401, strlen( $over ) );
		$this->assertNotNull( AppointEase_RT_Hold_Cookie::verify( self::SECRET, $fits, 1001 ) );
		$this->assertNull( AppointEase_RT_Hold_Cookie::verify( self::SECRET, $over, 1001 ) );
	}

	public function test_a_connection_token_is_not_a_cookie(): void {
		$token = AppointEase_RT_Jwt::issue( self::SECRET, 'wp:1', 'a@example.com', 'customer', 3600 );
		$this->assertSame( 2, substr_count( $token['token'], '.' ) );
		$this->assertNull( AppointEase_RT_Hold_Cookie::verify( self::SECRET, $token['token'] ) );
	}

	public function test_from_request_reads_the_cookie_jar(): void {
		$value = AppointEase_RT_Hold_Cookie::mint( self::SECRET, 'anonymous_1_abc' );
		$this->assertSame( 'anonymous_1_abc', AppointEase_RT_Hold_Cookie::from_request( self::SECRET, array( 'appointease_rt_hold' => $value ) ) );
		$this->assertNull( AppointEase_RT_Hold_Cookie::from_request( self::SECRET, array() ) );
		$this->assertNull( AppointEase_RT_Hold_Cookie::from_request( self::SECRET, array( 'appointease_rt_hold' => array( $value ) ) ) );
		$this->assertNull( AppointEase_RT_Hold_Cookie::from_request( self::SECRET, array( 'other' => $value ) ) );
		$this->assertNull( AppointEase_RT_Hold_Cookie::from_request( '', array( 'appointease_rt_hold' => $value ) ) );

		$saved = $_COOKIE;
		try {
			$_COOKIE = array( 'appointease_rt_hold' => $value );
			$this->assertSame( 'anonymous_1_abc', AppointEase_RT_Hold_Cookie::from_request( self::SECRET ) );
			$_COOKIE = array();
			$this->assertNull( AppointEase_RT_Hold_Cookie::from_request( self::SECRET ) );
		} finally {
			$_COOKIE = $saved;
		}
	}
}
