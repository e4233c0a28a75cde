<?php
/**
 * The base of the tests that read wp_appointease_slot_locks in real MariaDB (LocksTest,
 * HoldGuardTest): the table, empty before each test; the PHP time zone put back after it,
 * since the tests change it to show that expiry is the database's clock; lock() to insert a hold.
 * bootstrap.php loads this file (its name does not end in Test.php: PHPUnit runs no test here).
 */

declare(strict_types=1);

use PHPUnit\Framework\TestCase;

abstract class SlotLocksTestCase extends TestCase {

	/** AppointEase's two tables as the daemon ships them, {prefix} for the table prefix. */
	protected const SCHEMA_FILE = __DIR__ . '/../../daemon/appointease_realtime/store/schema.mysql.sql';

	/**
	 * The lock table exactly as AppointEase creates it (shared/booking-block.md): the
	 * wp_appointease_slot_locks statement of SCHEMA_FILE (its "--" lines dropped, split on ";").
	 */
	protected static function locks_ddl(): string {
		$schema = file_get_contents( self::SCHEMA_FILE );
		if ( false === $schema ) {
			throw new RuntimeException( 'cannot read ' . self::SCHEMA_FILE );
		}
		foreach ( explode( ';', (string) preg_replace( '/^\s*--.*$/m', '', $schema ) ) as $statement ) {
			if ( false !== strpos( $statement, '{prefix}appointease_slot_locks ' ) ) {
				return str_replace( '{prefix}', 'wp_', trim( $statement ) );
			}
		}
		throw new RuntimeException( 'no {prefix}appointease_slot_locks table in ' . self::SCHEMA_FILE );
	}

	/** @var string */
	private $php_tz;

	protected function setUp(): void {
		aert_require_db( $this );
		global $wpdb;
		$this->php_tz = date_default_timezone_get();
		$wpdb->query( self::locks_ddl() );
		$wpdb->query( 'TRUNCATE TABLE wp_appointease_slot_locks' );
	}

	protected function tearDown(): void {
		date_default_timezone_set( $this->php_tz );
	}

	/**
	 * Inserts a hold whose expiry is computed by the database: NOW() + $seconds.
	 */
	protected function lock( string $date, string $time, int $employee, string $client, int $seconds ): void {
		global $wpdb;
		$wpdb->query(
			$wpdb->prepare(
				'INSERT INTO wp_appointease_slot_locks (date, time, employee_id, client_id, expires_at) VALUES (%s, %s, %d, %s, NOW() + INTERVAL %d SECOND)',
				$date,
				$time,
				$employee,
				$client,
				$seconds
			)
		);
	}
}
