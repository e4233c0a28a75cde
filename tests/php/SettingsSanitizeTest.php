<?php
/**
 * AppointEase_RT_Settings_Page::sanitize(): what options.php stores from the form.
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

final class SettingsSanitizeTest extends TestCase {

	private const HOOK  = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYqrTw==';
	private const TOKEN = 'stored-token-secret-0123456789abcdef0123';

	protected function setUp(): void {
		$GLOBALS['aert_options']         = array();
		$GLOBALS['aert_settings_errors'] = array();
	}

	private function page( array $locked = array() ): AppointEase_RT_Settings_Page {
		$values = array_merge(
			array(
				'url'          => '',
				'public_url'   => '',
				'hook_secret'  => '',
				'token_secret' => '',
			),
			(array) get_option( AppointEase_RT_Config::OPTION, array() )
		);
		$config = new AppointEase_RT_Config( $values['url'], $values['public_url'], $values['hook_secret'], $values['token_secret'], $locked );
		return new AppointEase_RT_Settings_Page( new AppointEase_RT_Plugin( $config ) );
	}

	private function store( array $values ): void {
		update_option( AppointEase_RT_Config::OPTION, $values );
	}

	private function stored(): array {
		return array(
			'url'          => 'http://127.0.0.1:8080',
			'public_url'   => 'ws://127.0.0.1:8080',
			'hook_secret'  => self::HOOK,
			'token_secret' => self::TOKEN,
		);
	}

	private function error_codes(): array {
		return array_map( static fn( $e ) => $e['code'], get_settings_errors( AppointEase_RT_Config::OPTION ) );
	}

	public function test_valid_values_are_trimmed_and_kept(): void {
		$hook  = AppointEase_RT_Config::generate_hook_secret();
		$token = AppointEase_RT_Config::generate_token_secret();
		$out   = $this->page()->sanitize(
			array(
				'url'          => '  https://rt.example.com/base/ ',
				'public_url'   => 'wss://example.com/realtime/',
				'hook_secret'  => " $hook ",
				'token_secret' => $token,
				'unknown'      => 'dropped',
			)
		);
		$this->assertSame(
			array(
				'url'          => 'https://rt.example.com/base',
				'public_url'   => 'wss://example.com/realtime',
				'hook_secret'  => $hook,
				'token_secret' => $token,
			),
			$out
		);
		$this->assertSame( array(), $this->error_codes() );
	}

	public function test_empty_secret_fields_keep_the_stored_secrets_and_empty_urls_clear(): void {
		$this->store( $this->stored() );
		$out = $this->page()->sanitize(
			array(
				'url'          => '',
				'public_url'   => 'wss://new.example.com',
				'hook_secret'  => '',
				'token_secret' => '   ',
			)
		);
		$this->assertSame( '', $out['url'] );
		$this->assertSame( 'wss://new.example.com', $out['public_url'] );
		$this->assertSame( self::HOOK, $out['hook_secret'] );
		$this->assertSame( self::TOKEN, $out['token_secret'] );
	}

	public function test_invalid_values_are_refused_with_an_error_and_the_old_value_stays(): void {
		$this->store( $this->stored() );
		$out = $this->page()->sanitize(
			array(
				'url'          => 'javascript:alert(1)',
				'public_url'   => 'https://example.com',
				'hook_secret'  => 'whsec_tooshort',
				'token_secret' => 'short',
			)
		);
		$this->assertSame( $this->stored(), $out );
		$this->assertSame(
			array( 'appointease_rt_url', 'appointease_rt_public_url', 'appointease_rt_hook_secret', 'appointease_rt_token_secret' ),
			$this->error_codes()
		);
		foreach ( get_settings_errors( AppointEase_RT_Config::OPTION ) as $error ) {
			$this->assertSame( 'error', $error['type'] );
			$this->assertStringNotContainsString( 'whsec_tooshort', $error['message'] ); // A refused secret is not echoed.
		}
		// options.php sanitizes a new option twice: still one notice per problem.
		$this->page()->sanitize( array( 'url' => 'javascript:alert(1)' ) );
		$this->assertCount( 4, $this->error_codes() );
	}

	public function test_the_token_secret_must_differ_from_the_hook_secret(): void {
		$this->store( $this->stored() );
		$out = $this->page()->sanitize( array( 'token_secret' => self::HOOK ) );
		$this->assertSame( self::TOKEN, $out['token_secret'] );
		$this->assertSame( array( 'appointease_rt_same_secret' ), $this->error_codes() );
	}

	public function test_fields_set_by_constants_are_never_changed(): void {
		$this->store( $this->stored() );
		$locked = array(
			'url'         => 'APPOINTEASE_RT_URL',
			'hook_secret' => 'APPOINTEASE_RT_HOOK_SECRET',
		);
		$hook   = AppointEase_RT_Config::generate_hook_secret();
		$out    = $this->page( $locked )->sanitize(
			array(
				'url'          => 'https://other.example.com',
				'public_url'   => 'wss://other.example.com',
				'hook_secret'  => $hook,
				'token_secret' => str_repeat( 'n', 40 ),
			)
		);
		$this->assertSame( 'http://127.0.0.1:8080', $out['url'] );
		$this->assertSame( self::HOOK, $out['hook_secret'] );
		$this->assertSame( 'wss://other.example.com', $out['public_url'] );
		$this->assertSame( str_repeat( 'n', 40 ), $out['token_secret'] );
		$this->assertSame( array(), $this->error_codes() );
	}

	public function test_garbage_input_stores_nothing_harmful(): void {
		$this->assertSame(
			array(
				'url'          => '',
				'public_url'   => '',
				'hook_secret'  => '',
				'token_secret' => '',
			),
			$this->page()->sanitize( 'not an array' )
		);
		$out = $this->page()->sanitize( array( 'url' => array( 'http://x' ) ) );
		$this->assertSame( '', $out['url'] );
	}
}
