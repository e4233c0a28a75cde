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

	/** The lock table exactly as AppointEase creates it (shared/booking-block.md). */
	protected const LOCKS_DDL = 'CREATE TABLE IF NOT EXISTS wp_appointease_slot_locks (
		id mediumint(9) NOT NULL AUTO_INCREMENT,
		date DATE NOT NULL,
		time TIME NOT NULL,
		employee_id mediumint(9) NOT NULL,
		client_id VARCHAR(255) NOT NULL,
		expires_at DATETIME NOT NULL,
		created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
		PRIMARY KEY (id),
		UNIQUE KEY unique_slot (date, time, employee_id),
		INDEX idx_expires (expires_at),
		INDEX idx_client (client_id)
	)';

	/** @var string */
	private $php_tz;

	protected function setUp(): void {
		aert_require_db( $this );
		global $wpdb;
		$this->php_tz = date_default_timezone_get();
		$wpdb->query( self::LOCKS_DDL );
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
