<?php
/**
 * AppointEase_RT_Config: what the settings page accepts, masking, generated secrets,
 * and constants over options.
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

final class ConfigTest extends TestCase {

	public function test_daemon_url_accepts_http_and_https_only(): void {
		foreach ( array( 'http://127.0.0.1:8080', 'https://rt.example.com', 'http://daemon:8080/base', 'HTTPS://Example.com/' ) as $url ) {
			$this->assertSame( '', AppointEase_RT_Config::url_error( $url ), $url );
		}
		$bad = array( '', 'ws://127.0.0.1:8080', 'ftp://example.com', 'javascript:alert(1)', 'http://', 'example.com',
			'http://example.com/?a=b', 'http://example.com/#x', 'http://user:pass@example.com', "http://exa mple.com", "http://example.com/\n", 'http://example.com/"><script>' );
		foreach ( $bad as $url ) {
			$this->assertNotSame( '', AppointEase_RT_Config::url_error( $url ), $url );
		}
	}

	public function test_browser_url_accepts_ws_and_wss_only(): void {
		foreach ( array( 'ws://127.0.0.1:8080', 'wss://example.com/realtime', 'WSS://example.com/realtime/' ) as $url ) {
			$this->assertSame( '', AppointEase_RT_Config::public_url_error( $url ), $url );
		}
		foreach ( array( '', 'http://127.0.0.1:8080', 'https://example.com', 'ws://', 'wss://example.com/?token=x', 'wss:///path' ) as $url ) {
			$this->assertNotSame( '', AppointEase_RT_Config::public_url_error( $url ), $url );
		}
	}

	public function test_hook_secret_is_whsec_and_base64_of_24_to_64_bytes(): void {
		$ok = array(
			'whsec_' . base64_encode( str_repeat( 'k', 24 ) ),
			'whsec_' . base64_encode( random_bytes( 32 ) ),
			'whsec_' . base64_encode( str_repeat( 'k', 64 ) ),
		);
		foreach ( $ok as $secret ) {
			$this->assertSame( '', AppointEase_RT_Config::hook_secret_error( $secret ), $secret );
		}
		$bad = array(
			'',
			base64_encode( random_bytes( 32 ) ),                 // No prefix.
			'whsec_',
			'whsec_' . base64_encode( str_repeat( 'k', 23 ) ),   // Too short.
			'whsec_' . base64_encode( str_repeat( 'k', 65 ) ),   // Too long.
			'whsec_not base64 at all!!',
			'whsec_' . str_repeat( '*', 40 ),
		);
		foreach ( $bad as $secret ) {
			$this->assertNotSame( '', AppointEase_RT_Config::hook_secret_error( $secret ), $secret );
		}
	}

	public function test_token_secret_is_at_least_32_characters_without_spaces(): void {
		$this->assertSame( '', AppointEase_RT_Config::token_secret_error( str_repeat( 'a', 32 ) ) );
		$this->assertSame( '', AppointEase_RT_Config::token_secret_error( bin2hex( random_bytes( 32 ) ) ) );
		foreach ( array( '', str_repeat( 'a', 31 ), str_repeat( 'a', 20 ) . ' ' . str_repeat( 'a', 20 ), str_repeat( 'a', 40 ) . "\n", str_repeat( 'a', 513 ) ) as $secret ) {
			$this->assertNotSame( '', AppointEase_RT_Config::token_secret_error( $secret ), $secret );
		}
	}

	public function test_generated_secrets_are_valid_random_and_usable(): void {
		$hook  = AppointEase_RT_Config::generate_hook_secret();
		$token = AppointEase_RT_Config::generate_token_secret();
		$this->assertMatchesRegularExpression( '#^whsec_[A-Za-z0-9+/]{43}=$#', $hook );
		$this->assertSame( 32, strlen( AppointEase_RT_Signer::decode_secret( $hook ) ) );
		$this->assertSame( '', AppointEase_RT_Config::hook_secret_error( $hook ) );
		$this->assertMatchesRegularExpression( '/^[0-9a-f]{64}$/', $token );
		$this->assertSame( '', AppointEase_RT_Config::token_secret_error( $token ) );
		$this->assertNotSame( $hook, AppointEase_RT_Config::generate_hook_secret() );
		$this->assertNotSame( $token, AppointEase_RT_Config::generate_token_secret() );

		$config = new AppointEase_RT_Config( 'http://127.0.0.1:8080', 'ws://127.0.0.1:8080', $hook, $token );
		$this->assertTrue( $config->can_deliver() );
		$this->assertTrue( $config->can_issue_tokens() );
	}

	public function test_mask_shows_only_the_first_6_and_last_4_characters(): void {
		$secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYqrTw==';
		$masked = AppointEase_RT_Config::mask( $secret );
		$this->assertSame( 'whsec_...Tw==', $masked );
		$this->assertStringNotContainsString( substr( $secret, 6, -4 ), $masked );
		$this->assertSame( '', AppointEase_RT_Config::mask( '' ) );
		$this->assertSame( '********', AppointEase_RT_Config::mask( 'short-secret' ) ); // Too short to show any part.
	}

	public function test_saved_values_are_used_when_no_constant_is_defined(): void {
		$config = AppointEase_RT_Config::from_values(
			array(
				'url'          => 'http://127.0.0.1:8080/',
				'public_url'   => 'wss://example.com/realtime',
				'hook_secret'  => 'whsec_' . base64_encode( str_repeat( 'k', 32 ) ),
				'token_secret' => str_repeat( 't', 40 ),
			)
		);
		$this->assertSame( 'http://127.0.0.1:8080', $config->url );
		$this->assertSame( 'wss://example.com/realtime', $config->usable_public_url() );
		$this->assertTrue( $config->can_deliver() );
		$this->assertTrue( $config->can_issue_tokens() );
		$this->assertSame( array(), $config->locked );
		$this->assertFalse( $config->is_locked( 'url' ) );

		$empty = AppointEase_RT_Config::from_values( array( 'url' => array( 'not', 'a', 'string' ) ) );
		$this->assertSame( '', $empty->url );
		$this->assertFalse( $empty->can_deliver() );
	}
}
