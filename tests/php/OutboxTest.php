<?php
/**
 * AppointEase_RT_Outbox against a real MariaDB table (see bootstrap.php).
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

final class OutboxTest extends TestCase {

	/** @var array<int, array{id: string, body: string}> Calls made to the fake daemon. */
	private $calls = array();

	/** @var callable(string, string): array Decides each fake delivery's outcome. */
	private $responder;

	protected function setUp(): void {
		aert_require_db( $this );
		global $wpdb;
		$GLOBALS['aert_options'] = array();
		$this->calls             = array();
		$this->responder         = static fn() => array( 'ok' => true, 'status' => 200, 'error' => '' );
		$this->outbox()->install();
		$wpdb->query( 'TRUNCATE TABLE ' . AppointEase_RT_Outbox::table_name( $wpdb->prefix ) );
		aert_take_error_log();
	}

	private function outbox( int $max_attempts = 8 ): AppointEase_RT_Outbox {
		global $wpdb;
		return new AppointEase_RT_Outbox(
			$wpdb,
			function ( string $id, string $body ): array {
				$this->calls[] = array( 'id' => $id, 'body' => $body );
				return ( $this->responder )( $id, $body );
			},
			$max_attempts,
			30,
			3600
		);
	}

	private function rows(): array {
		global $wpdb;
		return $wpdb->get_results( 'SELECT *, CAST(next_attempt_at AS SIGNED) - UNIX_TIMESTAMP() AS due_in FROM wp_appointease_rt_outbox ORDER BY id', ARRAY_A );
	}

	private function make_all_due(): void {
		global $wpdb;
		$wpdb->query( 'UPDATE wp_appointease_rt_outbox SET next_attempt_at = 0, claimed_until = 0' );
	}

	private function sent_types(): array {
		return array_map(
			static function ( array $call ): string {
				$payload = json_decode( $call['body'], true );
				return $payload['type'] . ':' . $payload['data']['id'];
			},
			$this->calls
		);
	}

	public function test_enqueue_stores_the_wire_payload_and_delivery_removes_it(): void {
		$outbox = $this->outbox();
		$id     = $outbox->enqueue(
			'appointment.updated',
			42,
			array(
				'previous' => array(
					'appointment_date' => '2026-03-01 10:00:00',
					'employee_id'      => 3,
				),
			),
			'id:42'
		);
		$this->assertIsInt( $id );
		$rows = $this->rows();
		$this->assertCount( 1, $rows );
		$this->assertMatchesRegularExpression( '/^msg_[0-9a-f]{32}$/', $rows[0]['webhook_id'] );
		$payload = json_decode( $rows[0]['payload'], true );
		$this->assertSame( 'appointment.updated', $payload['type'] );
		$this->assertMatchesRegularExpression( '/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/', $payload['timestamp'] );
		$this->assertSame(
			array(
				'id'       => 42,
				'previous' => array(
					'appointment_date' => '2026-03-01 10:00:00',
					'employee_id'      => 3,
				),
			),
			$payload['data']
		);

		$stats = $outbox->flush();
		$this->assertSame( 1, $stats['delivered'] );
		$this->assertCount( 1, $this->calls );
		$this->assertSame( $rows[0]['webhook_id'], $this->calls[0]['id'] );
		$this->assertSame( $rows[0]['payload'], $this->calls[0]['body'], 'the exact stored bytes are sent' );
		$this->assertSame( array(), $this->rows() );
		$this->assertNull( AppointEase_RT_Outbox::last_error() );
	}

	public function test_nothing_is_lost_when_delivery_fails_and_retries_reuse_the_id(): void {
		$this->responder = static fn() => array( 'ok' => false, 'status' => 0, 'error' => 'cURL error 7: Connection refused' );
		$outbox          = $this->outbox();
		$outbox->enqueue( 'appointment.created', 'APT-2026-000123' );

		$stats = $outbox->flush();
		$this->assertSame( 1, $stats['failed'] );
		$rows = $this->rows();
		$this->assertCount( 1, $rows, 'a failed event stays queued' );
		$this->assertSame( '1', (string) $rows[0]['attempts'] );
		$this->assertSame( '0', (string) $rows[0]['last_status'] );
		$this->assertStringContainsString( 'Connection refused', $rows[0]['last_error'] );
		$this->assertSame( 'Connection refused', substr( AppointEase_RT_Outbox::last_error()['error'], -18 ) );
		$this->assertFalse( AppointEase_RT_Outbox::last_error()['dropped'] );

		// Not due yet: a flush right away does not try again.
		$outbox->flush();
		$this->assertCount( 1, $this->calls );

		$this->make_all_due();
		$this->responder = static fn() => array( 'ok' => true, 'status' => 200, 'error' => '' );
		$this->assertSame( 1, $outbox->flush()['delivered'] );
		$this->assertCount( 2, $this->calls );
		$this->assertSame( $this->calls[0]['id'], $this->calls[1]['id'], 'same webhook-id on retry' );
		$this->assertSame( $this->calls[0]['body'], $this->calls[1]['body'] );
		$this->assertSame( array(), $this->rows() );
	}

	public function test_non_2xx_is_a_failed_attempt_and_its_status_is_kept(): void {
		$this->responder = static fn() => array( 'ok' => false, 'status' => 401, 'error' => 'HTTP 401 bad_signature' );
		$outbox          = $this->outbox();
		$outbox->enqueue( 'appointment.cancelled', 7 );
		$outbox->flush();
		$rows = $this->rows();
		$this->assertCount( 1, $rows );
		$this->assertSame( '401', (string) $rows[0]['last_status'] );
		$this->assertSame( 401, AppointEase_RT_Outbox::last_error()['status'] );
		$this->assertNotEmpty( preg_grep( '/failed \(attempt 1\/8, status 401\)/', aert_take_error_log() ) );
	}

	public function test_backoff_doubles_up_to_the_cap(): void {
		$outbox = $this->outbox();
		$this->assertSame( array( 30, 60, 120, 240, 480, 960, 1920, 3600, 3600 ), array_map( array( $outbox, 'backoff_delay' ), range( 1, 9 ) ) );

		// The stored due time follows the schedule (database clock).
		$this->responder = static fn() => array( 'ok' => false, 'status' => 503, 'error' => 'HTTP 503' );
		$outbox->enqueue( 'appointment.created', 1 );
		foreach ( array( 30, 60, 120 ) as $expected ) {
			$this->make_all_due();
			$outbox->flush();
			$due_in = (int) $this->rows()[0]['due_in'];
			$this->assertGreaterThanOrEqual( $expected - 2, $due_in );
			$this->assertLessThanOrEqual( $expected, $due_in );
		}
	}

	public function test_event_is_dropped_only_after_its_last_attempt_and_that_is_logged(): void {
		$this->responder = static fn() => array( 'ok' => false, 'status' => 500, 'error' => 'HTTP 500 internal' );
		$outbox          = $this->outbox( 3 );
		$outbox->enqueue( 'appointment.created', 'APT-2026-000001' );
		for ( $attempt = 1; $attempt <= 2; $attempt++ ) {
			$this->make_all_due();
			$outbox->flush();
			$this->assertCount( 1, $this->rows(), "still queued after attempt $attempt" );
		}
		aert_take_error_log();
		$this->make_all_due();
		$stats = $outbox->flush();
		$this->assertSame( 1, $stats['dropped'] );
		$this->assertSame( array(), $this->rows() );
		$this->assertCount( 3, $this->calls );
		$log = implode( "\n", aert_take_error_log() );
		$this->assertMatchesRegularExpression( '/dropped appointment\.created msg_[0-9a-f]{32} \(appointment APT-2026-000001\) after 3 attempts; last error: HTTP 500 internal/', $log );
		$last = AppointEase_RT_Outbox::last_error();
		$this->assertTrue( $last['dropped'] );
		$this->assertSame( 'appointment.created', $last['type'] );
	}

	public function test_order_per_appointment_is_kept(): void {
		$outbox = $this->outbox();
		$outbox->enqueue( 'appointment.created', 'APT-1', array(), 'id:1' );
		$outbox->enqueue( 'appointment.updated', 1, array(), 'id:1' );
		$outbox->enqueue( 'appointment.created', 'APT-2', array(), 'id:2' );
		$outbox->enqueue( 'appointment.cancelled', 1, array(), 'id:1' );

		// The first event of appointment 1 fails: nothing newer of appointment 1 may overtake it,
		// appointment 2 is not held up.
		$this->responder = static function ( string $id, string $body ): array {
			return false !== strpos( $body, '"APT-1"' )
				? array( 'ok' => false, 'status' => 503, 'error' => 'HTTP 503' )
				: array( 'ok' => true, 'status' => 200, 'error' => '' );
		};
		$outbox->flush();
		$this->assertSame( array( 'appointment.created:APT-1', 'appointment.created:APT-2' ), $this->sent_types() );
		$this->assertSame( array( 'appointment.created', 'appointment.updated', 'appointment.cancelled' ), array_column( $this->rows(), 'event_type' ) );

		// Still not due: the later events of appointment 1 keep waiting behind it.
		$this->calls = array();
		$outbox->flush();
		$this->assertSame( array(), $this->calls );

		$this->make_all_due();
		$this->responder = static fn() => array( 'ok' => true, 'status' => 200, 'error' => '' );
		$outbox->flush();
		$this->assertSame( array( 'appointment.created:APT-1', 'appointment.updated:1', 'appointment.cancelled:1' ), $this->sent_types() );
		$this->assertSame( array(), $this->rows() );
	}

	public function test_a_dropped_event_releases_the_next_one_of_its_appointment(): void {
		$outbox = $this->outbox( 1 );
		$outbox->enqueue( 'appointment.created', 'APT-9', array(), 'id:9' );
		$outbox->enqueue( 'appointment.cancelled', 9, array(), 'id:9' );
		$this->responder = static function ( string $id, string $body ): array {
			return false !== strpos( $body, 'created' )
				? array( 'ok' => false, 'status' => 422, 'error' => 'HTTP 422' )
				: array( 'ok' => true, 'status' => 200, 'error' => '' );
		};
		$stats = $outbox->flush();
		$this->assertSame( 1, $stats['dropped'] );
		$this->assertSame( 1, $stats['delivered'] );
		$this->assertSame( array( 'appointment.created:APT-9', 'appointment.cancelled:9' ), $this->sent_types() );
	}

	public function test_a_transport_error_stops_the_batch_without_counting_the_others(): void {
		$this->responder = static fn() => array( 'ok' => false, 'status' => 0, 'error' => 'timed out' );
		$outbox          = $this->outbox();
		$outbox->enqueue( 'appointment.created', 'A', array(), 'a' );
		$outbox->enqueue( 'appointment.created', 'B', array(), 'b' );
		$outbox->flush();
		$this->assertCount( 1, $this->calls );
		$this->assertSame( array( '1', '0' ), array_map( 'strval', array_column( $this->rows(), 'attempts' ) ) );
	}

	public function test_flush_of_this_requests_ids_only(): void {
		$outbox = $this->outbox();
		$outbox->enqueue( 'appointment.created', 'OLD', array(), 'old' );
		$mine = $outbox->enqueue( 'appointment.created', 'MINE', array(), 'mine' );
		$outbox->flush( array( $mine ), 1 );
		$this->assertSame( array( 'appointment.created:MINE' ), $this->sent_types() );
		$this->assertSame( array( 'OLD' ), array_map( static fn( $r ) => json_decode( $r['payload'], true )['data']['id'], $this->rows() ) );
	}

	public function test_a_claimed_event_is_not_sent_twice(): void {
		global $wpdb;
		$outbox = $this->outbox();
		$outbox->enqueue( 'appointment.created', 'X' );
		// Another request claimed it a moment ago and is still sending it.
		$wpdb->query( 'UPDATE wp_appointease_rt_outbox SET claimed_until = UNIX_TIMESTAMP() + 30' );
		$outbox->flush();
		$this->assertSame( array(), $this->calls );
		$this->assertCount( 1, $this->rows() );
	}

	public function test_table_is_created_lazily_when_missing(): void {
		global $wpdb;
		$wpdb->query( 'DROP TABLE wp_appointease_rt_outbox' );
		$this->assertIsInt( $this->outbox()->enqueue( 'appointment.created', 'LAZY' ) );
		$this->assertCount( 1, $this->rows() );
	}

	public function test_concurrent_appends_lose_nothing(): void {
		aert_require_extensions( $this, 'pcntl', 'posix' );
		global $wpdb;
		$children = array();
		for ( $worker = 0; $worker < 6; $worker++ ) {
			$pid = pcntl_fork();
			if ( 0 === $pid ) {
				// Child: its own connection, 25 appends, then leave without running shutdown handlers.
				$mysqli = new mysqli( getenv( 'TEST_MYSQL_HOST' ) ?: ( getenv( 'MYSQL_HOST' ) ?: '127.0.0.1' ), getenv( 'MYSQL_USER' ) ?: 'root', getenv( 'MYSQL_PASSWORD' ) ?: '', $GLOBALS['aert_db_name'], (int) ( getenv( 'MYSQL_PORT' ) ?: 3306 ) );
				$db     = new Test_WPDB( $mysqli );
				$outbox = new AppointEase_RT_Outbox( $db, static fn() => array( 'ok' => true, 'status' => 200, 'error' => '' ) );
				$ok     = 0;
				for ( $i = 0; $i < 25; $i++ ) {
					$ok += null === $outbox->enqueue( 'appointment.created', "W{$worker}-{$i}", array(), "w{$worker}" ) ? 0 : 1;
				}
				posix_kill( posix_getpid(), 25 === $ok ? SIGKILL : SIGTERM );
			}
			$children[] = $pid;
		}
		foreach ( $children as $pid ) {
			pcntl_waitpid( $pid, $status );
			$this->assertSame( SIGKILL, pcntl_wtermsig( $status ), 'a child failed to append' );
		}
		$this->assertSame( 150, ( new AppointEase_RT_Outbox( $wpdb, 'is_string' ) )->count() );
		$this->assertSame( '150', (string) $wpdb->get_var( 'SELECT COUNT(DISTINCT webhook_id) FROM wp_appointease_rt_outbox' ) );
	}
}
