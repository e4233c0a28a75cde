<?php
/**
 * Makes the daemon's hold a guarantee at booking time, without changing the booking block.
 *
 * AppointEase books through its own REST routes:
 * POST /appointease/v1/appointments ({"date": "Y-m-d H:i:s", "employee_id": n, ...}) and
 * PUT /appointease/v1/appointments/<id or strong_id> ({"new_date": "Y-m-d H:i:s"}; the
 * employee stays the appointment's own). Right before such a route's callback runs (after
 * WordPress's authentication and the route's own permission check: filter
 * "rest_dispatch_request"), this class looks for a LIVE lock on the slot
 * (expires_at > the database's NOW()) in {$wpdb->prefix}appointease_slot_locks. When
 * another client than the one proven by the request's hold cookie
 * (AppointEase_RT_Hold_Cookie) holds it, or the request has no valid cookie, the
 * request is refused with HTTP 409 "appointease_rt_slot_held" and AppointEase never
 * sees it. The holder's own request, and any request for a slot nobody holds, goes on
 * unchanged.
 *
 * Off without a usable token secret (the daemon then sets no cookie) and when the
 * filter "appointease_rt_enforce_holds" returns false.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The booking-time hold check.
 */
final class AppointEase_RT_Hold_Guard {

	/** Code of the refusal (WP_Error). */
	const ERROR_CODE = 'appointease_rt_slot_held';

	/** Option counting the refused bookings (shown on the settings page). */
	const COUNTER_OPTION = 'appointease_rt_refused_bookings';

	/** The booking route. */
	const CREATE_ROUTE = '#^/appointease/v1/appointments/?$#';

	/** @var AppointEase_RT_Config */
	private $config;

	/** @var AppointEase_RT_Locks */
	private $locks;

	/** @var callable Called once per refused request. */
	private $on_refuse;

	/**
	 * @param AppointEase_RT_Config $config    Configuration (the token secret).
	 * @param AppointEase_RT_Locks  $locks     Lock reader.
	 * @param callable|null         $on_refuse Called once per refusal (default: count_refusal()).
	 */
	public function __construct( AppointEase_RT_Config $config, AppointEase_RT_Locks $locks, ?callable $on_refuse = null ) {
		$this->config    = $config;
		$this->locks     = $locks;
		$this->on_refuse = $on_refuse ?? array( __CLASS__, 'count_refusal' );
	}

	/**
	 * Registers the REST filter.
	 */
	public function register(): void {
		add_filter( 'rest_dispatch_request', array( $this, 'dispatch_request' ), 10, 4 );
	}

	/**
	 * Whether bookings are checked against holds: a usable token secret, and the filter.
	 *
	 * @param mixed $request The REST request being checked (null on the settings page).
	 */
	public function enabled( $request = null ): bool {
		if ( ! $this->config->can_issue_tokens() ) {
			return false;
		}
		/**
		 * Filters whether a booking or reschedule onto a slot another visitor holds is refused.
		 *
		 * @param bool                 $enforce Default true.
		 * @param WP_REST_Request|null $request The booking request (null on the settings page).
		 */
		return (bool) apply_filters( 'appointease_rt_enforce_holds', true, $request );
	}

	/**
	 * Filter "rest_dispatch_request": a 409 instead of the callback when another client holds the slot.
	 *
	 * @param mixed           $result  Null, or what another filter already answers (passed through).
	 * @param WP_REST_Request $request Request.
	 * @param string          $route   Route pattern.
	 * @param array           $handler Route handler.
	 * @return mixed
	 */
	public function dispatch_request( $result, $request = null, $route = '', $handler = array() ) {
		if ( null !== $result || ! $request instanceof WP_REST_Request ) {
			return $result;
		}
		if ( ! self::is_booking_route( $request ) || ! $this->enabled( $request ) ) {
			return $result;
		}
		$slot = self::slot_of( $request );
		if ( null === $slot ) {
			return $result;
		}
		$refusal = $this->check( $slot[0], $slot[1], $slot[2], $this->cookie_client_id() );
		return null === $refusal ? $result : $refusal;
	}

	/**
	 * The refusal when another client than $client_id holds a live lock on the slot, else null.
	 *
	 * @param string      $date        Y-m-d.
	 * @param string      $time        H:i or H:i:s.
	 * @param int         $employee_id Employee.
	 * @param string|null $client_id   The requester's verified clientId (null: none).
	 */
	public function check( string $date, string $time, int $employee_id, ?string $client_id ): ?WP_Error {
		$lock = $this->locks->live_lock( $date, $time, $employee_id );
		if ( null === $lock ) {
			return null;
		}
		if ( null !== $client_id && '' !== $client_id && hash_equals( $lock['client_id'], $client_id ) ) {
			return null;
		}
		call_user_func( $this->on_refuse );
		return self::error( $lock['expires_in'] );
	}

	/**
	 * The clientId proven by this request's hold cookie, or null.
	 */
	public function cookie_client_id(): ?string {
		return AppointEase_RT_Hold_Cookie::from_request( $this->config->can_issue_tokens() ? $this->config->token_secret : '' );
	}

	/**
	 * Whether the request is a booking (POST .../appointments) or may be a reschedule
	 * (PUT, PATCH or POST .../appointments/<id>). No database access.
	 *
	 * @param WP_REST_Request $request Request.
	 */
	public static function is_booking_route( $request ): bool {
		$method = strtoupper( (string) $request->get_method() );
		$route  = (string) $request->get_route();
		if ( 'POST' === $method && 1 === preg_match( self::CREATE_ROUTE, $route ) ) {
			return true;
		}
		return in_array( $method, array( 'PUT', 'PATCH', 'POST' ), true ) && 1 === preg_match( AppointEase_RT_Rest_Hooks::ROUTE_PATTERN, $route );
	}

	/**
	 * The slot a booking or reschedule request asks for: array( date, time, employee_id ), or null
	 * when the request is none of AppointEase's booking routes (or names no slot).
	 *
	 * @param WP_REST_Request $request Request.
	 * @return array{0: string, 1: string, 2: int}|null
	 */
	public static function slot_of( $request ): ?array {
		$method = strtoupper( (string) $request->get_method() );
		$route  = (string) $request->get_route();
		if ( 'POST' === $method && 1 === preg_match( self::CREATE_ROUTE, $route ) ) {
			$date = $request->get_param( 'date' );
			$time = $request->get_param( 'time' ); // Not AppointEase's; some clients send date + time.
			if ( ! is_scalar( $date ) ) {
				return null;
			}
			$split = AppointEase_RT_Locks::split_datetime( (string) $date );
			if ( null === $split && is_scalar( $time ) && '' !== trim( (string) $time ) ) {
				$split = AppointEase_RT_Locks::split_datetime( trim( (string) $date ) . ' ' . trim( (string) $time ) );
			}
			$employee = $request->get_param( 'employee_id' );
			if ( null === $split || ! is_numeric( $employee ) ) {
				return null;
			}
			return array( $split[0], $split[1], (int) $employee );
		}
		// A reschedule: PUT (AppointEase), or PATCH/POST should a route accept them, with new_date.
		if ( in_array( $method, array( 'PUT', 'PATCH', 'POST' ), true ) && 1 === preg_match( AppointEase_RT_Rest_Hooks::ROUTE_PATTERN, $route, $m ) ) {
			$new_date = $request->get_param( 'new_date' );
			$split    = is_scalar( $new_date ) ? AppointEase_RT_Locks::split_datetime( (string) $new_date ) : null;
			if ( null === $split ) {
				return null;
			}
			$row = AppointEase_RT_Rest_Hooks::find_appointment( $m['id'] );
			if ( null === $row || null === $row['employee_id'] ) {
				return null; // AppointEase answers its own 404.
			}
			return array( $split[0], $split[1], (int) $row['employee_id'] );
		}
		return null;
	}

	/**
	 * The 409 answer: code appointease_rt_slot_held, data {status: 409, expiresIn: seconds}.
	 *
	 * @param int $expires_in Seconds the hold has left.
	 */
	public static function error( int $expires_in ): WP_Error {
		$expires_in = max( 1, $expires_in );
		$minutes    = max( 1, (int) ceil( $expires_in / 60 ) );
		/* translators: %d: minutes until the other visitor's hold ends. */
		$text = _n( 'This time is being booked by someone else. Please pick another time or try again in %d minute.', 'This time is being booked by someone else. Please pick another time or try again in %d minutes.', $minutes, 'appointease-realtime-bridge' );
		return new WP_Error(
			self::ERROR_CODE,
			sprintf( $text, $minutes ),
			array(
				'status'    => 409,
				'expiresIn' => $expires_in,
			)
		);
	}

	/**
	 * Adds one to the refused-bookings counter (one UPDATE, so concurrent refusals all count).
	 */
	public static function count_refusal(): void {
		global $wpdb;
		$sql = $wpdb->prepare(
			"UPDATE {$wpdb->options} SET option_value = CAST(option_value AS UNSIGNED) + 1 WHERE option_name = %s", // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
			self::COUNTER_OPTION
		);
		if ( ! $wpdb->query( $sql ) && ! add_option( self::COUNTER_OPTION, '1', '', false ) ) { // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared, WordPress.DB.DirectDatabaseQuery
			$wpdb->query( $sql ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared, WordPress.DB.DirectDatabaseQuery -- Another request added it meanwhile.
		}
		wp_cache_delete( self::COUNTER_OPTION, 'options' );
	}

	/**
	 * How many bookings were refused so far.
	 */
	public static function refused_count(): int {
		return (int) get_option( self::COUNTER_OPTION, 0 );
	}
}
