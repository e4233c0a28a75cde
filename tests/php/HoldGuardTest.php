<?php
/**
 * AppointEase_RT_Hold_Guard against real MariaDB: which request names which slot, who is
 * refused (409 appointease_rt_slot_held with expiresIn), who goes on, and when it is off.
 * The same in a real WordPress with the daemon: tests/wordpress/test_hold_enforcement.py.
 */

declare(strict_types=1);

final class HoldGuardTest extends SlotLocksTestCase {

	private const SECRET = 'test-token-secret-of-at-least-32-characters';
	private const HOLDER = 'anonymous_1761527416882_q0q2y9pwf';

	/** @var int */
	private $refusals = 0;

	/** @var array */
	private $saved_cookies;

	protected function setUp(): void {
		parent::setUp();
		global $wpdb;
		$wpdb->query(
			"CREATE TABLE IF NOT EXISTS wp_appointments (
				id mediumint(9) NOT NULL AUTO_INCREMENT,
				name varchar(100) NOT NULL,
				email varchar(100) NOT NULL,
				appointment_date datetime NOT NULL,
				status varchar(20) DEFAULT 'confirmed',
				employee_id mediumint(9),
				strong_id varchar(20) UNIQUE,
				PRIMARY KEY (id)
			)"
		);
		$wpdb->query( 'TRUNCATE TABLE wp_appointments' );
		$this->refusals      = 0;
		$this->saved_cookies = $_COOKIE;
		$_COOKIE             = array();
		aert_reset_filters();
	}

	protected function tearDown(): void {
		$_COOKIE = $this->saved_cookies;
		aert_reset_filters();
		parent::tearDown();
	}

	private function guard( string $token_secret = self::SECRET ): AppointEase_RT_Hold_Guard {
		global $wpdb;
		$config = new AppointEase_RT_Config( 'http://127.0.0.1:8080', 'ws://127.0.0.1:8080', '', $token_secret );
		return new AppointEase_RT_Hold_Guard(
			$config,
			new AppointEase_RT_Locks( $wpdb ),
			function (): void {
				++$this->refusals;
			}
		);
	}

	private function booking( string $date, $employee, array $more = array() ): WP_REST_Request {
		return new WP_REST_Request( 'POST', '/appointease/v1/appointments', array_merge( array( 'date' => $date, 'employee_id' => $employee ), $more ) );
	}

	private function assert_refused( $result, int $min_seconds, int $max_seconds, string $minutes_text ): void {
		$this->assertInstanceOf( WP_Error::class, $result );
		$this->assertSame( 'appointease_rt_slot_held', $result->get_error_code() );
		$data = $result->get_error_data();
		$this->assertSame( 409, $data['status'] );
		$this->assertGreaterThanOrEqual( $min_seconds, $data['expiresIn'] );
		$this->assertLessThanOrEqual( $max_seconds, $data['expiresIn'] );
		$this->assertSame(
			"This time is being booked by someone else. Please pick another time or try again in $minutes_text.",
			$result->get_error_message()
		);
	}

	public function test_another_clients_live_hold_is_refused_with_the_time_left(): void {
		$this->lock( '2030-05-06', '10:00:00', 3, self::HOLDER, 600 );
		$guard = $this->guard();
		$this->assert_refused( $guard->check( '2030-05-06', '10:00', 3, 'anonymous_2_other' ), 598, 600, '10 minutes' );
		$this->assert_refused( $guard->check( '2030-05-06', '10:00:00', 3, null ), 598, 600, '10 minutes' );
		$this->assert_refused( $guard->check( '2030-05-06', '10:00:00', 3, '' ), 598, 600, '10 minutes' );
		$this->assertSame( 3, $this->refusals );
		// The holder, another time, another employee, another day: on unchanged.
		$this->assertNull( $guard->check( '2030-05-06', '10:00', 3, self::HOLDER ) );
		$this->assertNull( $guard->check( '2030-05-06', '10:30', 3, 'anonymous_2_other' ) );
		$this->assertNull( $guard->check( '2030-05-06', '10:00', 4, 'anonymous_2_other' ) );
		$this->assertNull( $guard->check( '2030-05-07', '10:00', 3, 'anonymous_2_other' ) );
		$this->assertSame( 3, $this->refusals );
	}

	public function test_minutes_are_rounded_up_and_at_least_one(): void {
		$this->lock( '2030-05-06', '11:00:00', 3, self::HOLDER, 61 );
		$this->lock( '2030-05-06', '12:00:00', 3, self::HOLDER, 2 );
		$this->assert_refused( $this->guard()->check( '2030-05-06', '11:00', 3, 'x' ), 59, 61, '2 minutes' );
		$this->assert_refused( $this->guard()->check( '2030-05-06', '12:00', 3, 'x' ), 1, 2, '1 minute' );
		$this->assertSame( 1, AppointEase_RT_Hold_Guard::error( 0 )->get_error_data()['expiresIn'] );
		$this->assertStringEndsWith( 'in 1 minute.', AppointEase_RT_Hold_Guard::error( 60 )->get_error_message() );
		$this->assertStringEndsWith( 'in 2 minutes.', AppointEase_RT_Hold_Guard::error( 61 )->get_error_message() );
	}

	public function test_expiry_is_the_database_clock(): void {
		global $wpdb;
		$this->lock( '2030-05-06', '13:00:00', 3, self::HOLDER, 300 );
		$wpdb->query( "INSERT INTO wp_appointease_slot_locks (date, time, employee_id, client_id, expires_at) VALUES ('2030-05-06', '14:00:00', 3, 'holder', NOW() - INTERVAL 1 SECOND)" );
		foreach ( array( 'Pacific/Kiritimati', 'Etc/GMT+12', 'UTC' ) as $tz ) {
			date_default_timezone_set( $tz );
			$this->assert_refused( $this->guard()->check( '2030-05-06', '13:00', 3, 'x' ), 290, 300, '5 minutes' );
			$this->assertNull( $this->guard()->check( '2030-05-06', '14:00', 3, 'x' ), $tz );
		}
	}

	public function test_which_requests_name_a_slot(): void {
		global $wpdb;
		$wpdb->query( "INSERT INTO wp_appointments (id, name, email, appointment_date, employee_id, strong_id) VALUES (7, 'A', 'a@example.org', '2030-05-06 09:00:00', 5, 'APT-2030-000007')" );
		$wpdb->query( "INSERT INTO wp_appointments (id, name, email, appointment_date, employee_id, strong_id) VALUES (8, 'B', 'b@example.org', '2030-05-06 09:30:00', NULL, 'APT-2030-000008')" );
		$cases = array(
			array( $this->booking( '2030-05-06 10:00:00', 3 ), array( '2030-05-06', '10:00:00', 3 ) ),
			array( $this->booking( '2030-05-06 10:00', '3' ), array( '2030-05-06', '10:00', 3 ) ),
			array( $this->booking( '2030-05-06T10:00:00', 3 ), array( '2030-05-06', '10:00:00', 3 ) ),
			array( $this->booking( '2030-05-06', 3, array( 'time' => '10:00' ) ), array( '2030-05-06', '10:00', 3 ) ),
			array( new WP_REST_Request( 'POST', '/appointease/v1/appointments/', array( 'date' => '2030-05-06 10:00:00', 'employee_id' => 3 ) ), array( '2030-05-06', '10:00:00', 3 ) ),
			array( new WP_REST_Request( 'PUT', '/appointease/v1/appointments/7', array( 'new_date' => '2030-05-06 10:00:00' ) ), array( '2030-05-06', '10:00:00', 5 ) ),
			array( new WP_REST_Request( 'PUT', '/appointease/v1/appointments/APT-2030-000007', array( 'new_date' => '2030-05-06 11:00:00', 'employee_id' => 9 ) ), array( '2030-05-06', '11:00:00', 5 ) ),
			array( new WP_REST_Request( 'PATCH', '/appointease/v1/appointments/7', array( 'new_date' => '2030-05-06 10:00:00' ) ), array( '2030-05-06', '10:00:00', 5 ) ),
			// Not a slot: passed on for AppointEase to answer.
			array( $this->booking( 'tomorrow', 3 ), null ),
			array( $this->booking( '2030-05-06', 3 ), null ),
			array( $this->booking( '2030-05-06 10:00:00', 0 ), array( '2030-05-06', '10:00:00', 0 ) ),
			array( new WP_REST_Request( 'POST', '/appointease/v1/appointments', array( 'date' => '2030-05-06 10:00:00' ) ), null ),
			array( new WP_REST_Request( 'POST', '/appointease/v1/appointments', array( 'date' => array( 'x' ), 'employee_id' => 3 ) ), null ),
			array( new WP_REST_Request( 'GET', '/appointease/v1/appointments', array( 'date' => '2030-05-06 10:00:00', 'employee_id' => 3 ) ), null ),
			array( new WP_REST_Request( 'POST', '/other/v1/appointments', array( 'date' => '2030-05-06 10:00:00', 'employee_id' => 3 ) ), null ),
			array( new WP_REST_Request( 'DELETE', '/appointease/v1/appointments/7', array() ), null ),
			array( new WP_REST_Request( 'PUT', '/appointease/v1/appointments/7', array() ), null ),
			array( new WP_REST_Request( 'PUT', '/appointease/v1/appointments/999', array( 'new_date' => '2030-05-06 10:00:00' ) ), null ),
			array( new WP_REST_Request( 'PUT', '/appointease/v1/appointments/8', array( 'new_date' => '2030-05-06 10:00:00' ) ), null ),
			array( new WP_REST_Request( 'PUT', "/appointease/v1/appointments/7' OR '1'='1", array( 'new_date' => '2030-05-06 10:00:00' ) ), null ),
		);
		foreach ( $cases as $i => list( $request, $slot ) ) {
			$this->assertSame( $slot, AppointEase_RT_Hold_Guard::slot_of( $request ), "case $i" );
			if ( null !== $slot ) {
				$this->assertTrue( AppointEase_RT_Hold_Guard::is_booking_route( $request ), "case $i" );
			}
		}
		foreach ( array( array( 'GET', '/appointease/v1/appointments' ), array( 'DELETE', '/appointease/v1/appointments/7' ), array( 'POST', '/appointease/v1/appointments/7/notes' ), array( 'POST', '/wp/v2/posts' ) ) as list( $method, $route ) ) {
			$this->assertFalse( AppointEase_RT_Hold_Guard::is_booking_route( new WP_REST_Request( $method, $route ) ), "$method $route" );
		}
	}

	public function test_the_request_filter_uses_the_cookie(): void {
		$this->lock( '2030-05-06', '10:00:00', 3, self::HOLDER, 600 );
		$guard   = $this->guard();
		$request = $this->booking( '2030-05-06 10:00:00', 3 );

		$this->assert_refused( $guard->dispatch_request( null, $request, '', array() ), 598, 600, '10 minutes' );
		$_COOKIE['appointease_rt_hold'] = AppointEase_RT_Hold_Cookie::mint( self::SECRET, 'anonymous_2_other' );
		$this->assert_refused( $guard->dispatch_request( null, $request, '', array() ), 598, 600, '10 minutes' );
		$_COOKIE['appointease_rt_hold'] = AppointEase_RT_Hold_Cookie::mint( 'another-site-secret-of-32-characters!', self::HOLDER );
		$this->assert_refused( $guard->dispatch_request( null, $request, '', array() ), 598, 600, '10 minutes' );
		$_COOKIE['appointease_rt_hold'] = AppointEase_RT_Hold_Cookie::mint( self::SECRET, self::HOLDER, time() - 86400 * 2 );
		$this->assert_refused( $guard->dispatch_request( null, $request, '', array() ), 598, 600, '10 minutes' );
		$this->assertSame( 4, $this->refusals );

		$_COOKIE['appointease_rt_hold'] = AppointEase_RT_Hold_Cookie::mint( self::SECRET, self::HOLDER );
		$this->assertNull( $guard->dispatch_request( null, $request, '', array() ), 'the holder goes on' );
		$this->assertSame( self::HOLDER, $guard->cookie_client_id() );

		// What another filter already answered is passed through; so is what is no booking.
		$earlier = new WP_Error( 'other', 'other' );
		unset( $_COOKIE['appointease_rt_hold'] );
		$this->assertSame( $earlier, $guard->dispatch_request( $earlier, $request, '', array() ) );
		$this->assertNull( $guard->dispatch_request( null, new WP_REST_Request( 'GET', '/appointease/v1/appointments' ), '', array() ) );
		$this->assertNull( $guard->dispatch_request( null, 'not a request', '', array() ) );
		$this->assertSame( 4, $this->refusals );
	}

	public function test_off_without_a_token_secret_or_by_the_filter(): void {
		$this->lock( '2030-05-06', '10:00:00', 3, self::HOLDER, 600 );
		$request = $this->booking( '2030-05-06 10:00:00', 3 );
		$_COOKIE['appointease_rt_hold'] = AppointEase_RT_Hold_Cookie::mint( 'short', self::HOLDER );

		foreach ( array( '', 'short' ) as $secret ) { // A constant may be shorter than 32: unusable.
			$guard = $this->guard( $secret );
			$this->assertFalse( $guard->enabled() );
			$this->assertNull( $guard->dispatch_request( null, $request, '', array() ) );
			$this->assertNull( $guard->cookie_client_id() );
		}

		$guard = $this->guard();
		$this->assertTrue( $guard->enabled() );
		$seen = array();
		aert_add_filter(
			'appointease_rt_enforce_holds',
			static function ( $enforce, $filtered ) use ( &$seen ) {
				$seen[] = $filtered;
				return false;
			}
		);
		$this->assertFalse( $guard->enabled() );
		$this->assertNull( $guard->dispatch_request( null, $request, '', array() ) );
		$this->assertSame( $request, end( $seen ), 'the filter gets the request' );
		$asked = count( $seen );
		$guard->dispatch_request( null, new WP_REST_Request( 'GET', '/wp/v2/posts' ), '', array() );
		$this->assertCount( $asked, $seen, 'other routes do not ask the filter' );
		$this->assertSame( 0, $this->refusals );
	}

	public function test_a_missing_lock_table_fails_open(): void {
		global $wpdb;
		$other         = clone $wpdb;
		$other->prefix = 'nope_';
		$guard         = new AppointEase_RT_Hold_Guard(
			new AppointEase_RT_Config( '', '', '', self::SECRET ),
			new AppointEase_RT_Locks( $other )
		);
		$this->assertNull( $guard->check( '2030-05-06', '10:00', 3, null ) );
	}
}
