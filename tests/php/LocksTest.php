<?php
/**
 * appointease_realtime_can_book()'s core (AppointEase_RT_Locks) against real MariaDB.
 */

declare(strict_types=1);

final class LocksTest extends SlotLocksTestCase {

	private function locks(): AppointEase_RT_Locks {
		global $wpdb;
		return new AppointEase_RT_Locks( $wpdb );
	}

	public function test_free_slot_can_be_booked(): void {
		$this->assertTrue( $this->locks()->can_book( '2026-03-02', '10:00', 3, 'anyone' ) );
		$this->assertTrue( $this->locks()->can_book( '2026-03-02', '10:00', 3, '' ) );
	}

	public function test_live_lock_of_another_client_blocks_and_the_holder_may_book(): void {
		$this->lock( '2026-03-02', '10:00:00', 3, 'anonymous_1761527416882_q0q2y9pwf', 600 );
		$locks = $this->locks();
		$this->assertFalse( $locks->can_book( '2026-03-02', '10:00', 3, 'someone_else' ) );
		$this->assertFalse( $locks->can_book( '2026-03-02', '10:00:00', 3, '' ), 'an unknown client is another client' );
		$this->assertFalse( $locks->can_book( '2026-03-02 10:00:00', '', 3, 'someone_else' ), 'datetime form' );
		$this->assertTrue( $locks->can_book( '2026-03-02', '10:00', 3, 'anonymous_1761527416882_q0q2y9pwf' ) );
		$this->assertSame( 'anonymous_1761527416882_q0q2y9pwf', $locks->holder( '2026-03-02', '10:00', 3 ) );
		// Other slots are unaffected.
		$this->assertTrue( $locks->can_book( '2026-03-02', '10:30', 3, 'someone_else' ) );
		$this->assertTrue( $locks->can_book( '2026-03-02', '10:00', 4, 'someone_else' ) );
		$this->assertTrue( $locks->can_book( '2026-03-03', '10:00', 3, 'someone_else' ) );
	}

	public function test_expired_lock_does_not_block(): void {
		$this->lock( '2026-03-02', '11:00', 3, 'holder', -1 );
		$this->assertTrue( $this->locks()->can_book( '2026-03-02', '11:00', 3, 'someone_else' ) );
		$this->assertNull( $this->locks()->holder( '2026-03-02', '11:00', 3 ) );
	}

	public function test_expiry_uses_the_database_clock_not_php(): void {
		global $wpdb;
		// Live for 5 more minutes by the database's NOW(); PHP thinks it is 14 hours later (UTC+14)
		// or 12 hours earlier (UTC-12): neither may change the answer.
		$this->lock( '2026-03-02', '12:00', 3, 'holder', 300 );
		$this->lock( '2026-03-02', '13:00', 3, 'holder', -300 );
		foreach ( array( 'Pacific/Kiritimati', 'Etc/GMT+12', 'UTC' ) as $tz ) {
			date_default_timezone_set( $tz );
			$this->assertFalse( $this->locks()->can_book( '2026-03-02', '12:00', 3, 'other' ), $tz );
			$this->assertTrue( $this->locks()->can_book( '2026-03-02', '13:00', 3, 'other' ), $tz );
		}
		// A PHP-computed expiry written in PHP's (+14 h) wall clock would have looked live for
		// hours; the row below expired one second ago by the database clock and must not block.
		$wpdb->query( "INSERT INTO wp_appointease_slot_locks (date, time, employee_id, client_id, expires_at) VALUES ('2026-03-02', '14:00:00', 3, 'holder', NOW() - INTERVAL 1 SECOND)" );
		date_default_timezone_set( 'Pacific/Kiritimati' );
		$this->assertTrue( $this->locks()->can_book( '2026-03-02', '14:00', 3, 'other' ) );
	}

	public function test_hostile_input_is_harmless(): void {
		$this->lock( '2026-03-02', '10:00', 3, 'holder', 600 );
		$locks = $this->locks();
		$this->assertFalse( $locks->can_book( '2026-03-02', '10:00', 3, "x' OR '1'='1" ) );
		$this->assertTrue( $locks->can_book( "2026-03-02' OR '1'='1", '10:00', 3, 'other' ), 'not a date: no slot to check' );
		$this->assertSame( 1, (int) $GLOBALS['wpdb']->get_var( 'SELECT COUNT(*) FROM wp_appointease_slot_locks' ) );
	}

	public function test_missing_lock_table_fails_open(): void {
		global $wpdb;
		$other         = clone $wpdb;
		$other->prefix = 'nope_';
		$locks         = new AppointEase_RT_Locks( $other );
		$this->assertTrue( $locks->can_book( '2026-03-02', '10:00', 3, 'x' ) );
	}
}
