<?php
/**
 * AppointEase_RT_Signer against the Standard Webhooks v1 scheme.
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

final class SignerTest extends TestCase {

	/*
	 * The Standard Webhooks reference test vector. The scheme is specified in
	 * https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
	 * ("Signature scheme": sign "{msg_id}.{timestamp}.{payload}" with HMAC-SHA256,
	 * header "v1,<base64>"); the concrete vector below is the one the project's
	 * reference libraries test against, e.g. libraries/php/tests/WebhookTest.php
	 * testSignFunctionWorks() and libraries/python's test_sign_function in the same
	 * repository (standard-webhooks/standard-webhooks).
	 */
	private const SECRET    = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
	private const MSG_ID    = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
	private const TIMESTAMP = 1614265330;
	private const PAYLOAD   = '{"test": 2432232314}';
	private const EXPECTED  = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

	private function headers( string $signature, string $id = self::MSG_ID, $timestamp = self::TIMESTAMP ): array {
		return array(
			'webhook-id'        => $id,
			'webhook-timestamp' => (string) $timestamp,
			'webhook-signature' => $signature,
		);
	}

	public function test_spec_test_vector_sign(): void {
		$signer = new AppointEase_RT_Signer( self::SECRET );
		$this->assertSame( self::EXPECTED, $signer->sign( self::MSG_ID, self::TIMESTAMP, self::PAYLOAD ) );
		$this->assertSame( self::EXPECTED, $signer->sign( self::MSG_ID, (string) self::TIMESTAMP, self::PAYLOAD ) );
	}

	public function test_spec_test_vector_verify_with_and_without_prefix(): void {
		foreach ( array( self::SECRET, substr( self::SECRET, 6 ) ) as $secret ) {
			$signer = new AppointEase_RT_Signer( $secret );
			$this->assertTrue( $signer->verify( $this->headers( self::EXPECTED ), self::PAYLOAD, 300, self::TIMESTAMP ) );
		}
	}

	public function test_headers_are_case_insensitive_and_may_be_lists(): void {
		$signer  = new AppointEase_RT_Signer( self::SECRET );
		$headers = array(
			'Webhook-Id'        => array( self::MSG_ID ),
			'WEBHOOK_TIMESTAMP' => array( (string) self::TIMESTAMP ),
			'webhook-Signature' => self::EXPECTED,
		);
		$this->assertTrue( $signer->verify( $headers, self::PAYLOAD, 300, self::TIMESTAMP ) );
	}

	public function test_headers_helper_round_trips(): void {
		$signer  = new AppointEase_RT_Signer( AppointEase_RT_Signer::generate_secret() );
		$now     = time();
		$headers = $signer->headers( 'msg_abc', $now, '{"type":"test.ping"}' );
		$this->assertSame( array( 'webhook-id', 'webhook-timestamp', 'webhook-signature' ), array_keys( $headers ) );
		$this->assertTrue( $signer->verify( $headers, '{"type":"test.ping"}' ) );
	}

	public function test_rotation_any_matching_v1_signature_is_enough(): void {
		$old       = new AppointEase_RT_Signer( AppointEase_RT_Signer::generate_secret() );
		$new       = new AppointEase_RT_Signer( self::SECRET );
		$other     = new AppointEase_RT_Signer( AppointEase_RT_Signer::generate_secret() );
		$old_sig   = $old->sign( self::MSG_ID, self::TIMESTAMP, self::PAYLOAD );
		$signature = implode(
			' ',
			array(
				'v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==',
				'v2,' . substr( self::EXPECTED, 3 ), // Right bytes, unknown version: ignored.
				$old_sig,
				self::EXPECTED,
				'garbage',
			)
		);
		$this->assertTrue( $new->verify( $this->headers( $signature ), self::PAYLOAD, 300, self::TIMESTAMP ) );
		$this->assertTrue( $old->verify( $this->headers( $signature ), self::PAYLOAD, 300, self::TIMESTAMP ) );
		$this->assertFalse( $other->verify( $this->headers( $signature ), self::PAYLOAD, 300, self::TIMESTAMP ) );
		// Only an unknown version carries the right bytes: refused.
		$this->assertFalse( $new->verify( $this->headers( 'v2,' . substr( self::EXPECTED, 3 ) ), self::PAYLOAD, 300, self::TIMESTAMP ) );
	}

	public function test_tolerance_is_300_seconds_both_ways(): void {
		$signer  = new AppointEase_RT_Signer( self::SECRET );
		$headers = $this->headers( self::EXPECTED );
		$this->assertTrue( $signer->verify( $headers, self::PAYLOAD, 300, self::TIMESTAMP + 300 ) );
		$this->assertTrue( $signer->verify( $headers, self::PAYLOAD, 300, self::TIMESTAMP - 300 ) );
		$this->assertFalse( $signer->verify( $headers, self::PAYLOAD, 300, self::TIMESTAMP + 301 ), 'too old' );
		$this->assertFalse( $signer->verify( $headers, self::PAYLOAD, 300, self::TIMESTAMP - 301 ), 'too new' );
		// Default tolerance and clock: the 2021 vector is far too old today.
		$this->assertFalse( $signer->verify( $headers, self::PAYLOAD ) );
	}

	public function test_tampering_is_detected(): void {
		$signer = new AppointEase_RT_Signer( self::SECRET );
		$now    = self::TIMESTAMP;
		$this->assertFalse( $signer->verify( $this->headers( self::EXPECTED ), '{"test": 2432232315}', 300, $now ), 'body' );
		$this->assertFalse( $signer->verify( $this->headers( self::EXPECTED ), self::PAYLOAD . ' ', 300, $now ), 'whitespace' );
		$this->assertFalse( $signer->verify( $this->headers( self::EXPECTED, 'msg_other' ), self::PAYLOAD, 300, $now ), 'id' );
		$this->assertFalse( $signer->verify( $this->headers( self::EXPECTED, self::MSG_ID, self::TIMESTAMP + 1 ), self::PAYLOAD, 300, $now ), 'timestamp' );
		$flipped = 'v1,' . strtr( substr( self::EXPECTED, 3 ), 'g', 'h' );
		$this->assertFalse( $signer->verify( $this->headers( $flipped ), self::PAYLOAD, 300, $now ), 'signature' );
		$wrong = new AppointEase_RT_Signer( 'whsec_' . base64_encode( 'another secret of enough length!' ) );
		$this->assertFalse( $wrong->verify( $this->headers( self::EXPECTED ), self::PAYLOAD, 300, $now ), 'secret' );
	}

	public function test_missing_or_malformed_headers_are_refused(): void {
		$signer = new AppointEase_RT_Signer( self::SECRET );
		foreach ( array( 'webhook-id', 'webhook-timestamp', 'webhook-signature' ) as $missing ) {
			$headers = $this->headers( self::EXPECTED );
			unset( $headers[ $missing ] );
			$this->assertFalse( $signer->verify( $headers, self::PAYLOAD, 300, self::TIMESTAMP ), $missing );
		}
		$this->assertFalse( $signer->verify( $this->headers( self::EXPECTED, self::MSG_ID, '1614265330.0' ), self::PAYLOAD, 300, self::TIMESTAMP ) );
		$this->assertFalse( $signer->verify( $this->headers( self::EXPECTED, self::MSG_ID, 'now' ), self::PAYLOAD, 300, self::TIMESTAMP ) );
	}

	public function test_bad_secrets_and_arguments_throw(): void {
		foreach ( array( '', 'whsec_', 'whsec_not base64!' ) as $secret ) {
			try {
				new AppointEase_RT_Signer( $secret );
				$this->fail( 'accepted secret ' . var_export( $secret, true ) );
			} catch ( InvalidArgumentException $e ) {
				$this->addToAssertionCount( 1 );
			}
		}
		$signer = new AppointEase_RT_Signer( self::SECRET );
		foreach ( array( '161426533.0', '-161426533', 'invalid timestamp', -1 ) as $timestamp ) {
			try {
				$signer->sign( self::MSG_ID, $timestamp, self::PAYLOAD );
				$this->fail( 'accepted timestamp ' . var_export( $timestamp, true ) );
			} catch ( InvalidArgumentException $e ) {
				$this->addToAssertionCount( 1 );
			}
		}
		$this->expectException( InvalidArgumentException::class );
		$signer->sign( 'msg.with.dots', self::TIMESTAMP, self::PAYLOAD );
	}

	public function test_generated_secrets_are_32_random_bytes(): void {
		$a = AppointEase_RT_Signer::generate_secret();
		$this->assertStringStartsWith( 'whsec_', $a );
		$this->assertSame( 32, strlen( AppointEase_RT_Signer::decode_secret( $a ) ) );
		$this->assertNotSame( $a, AppointEase_RT_Signer::generate_secret() );
	}
}
