<?php
/**
 * Watches AppointEase's own REST routes and actions and queues events.
 *
 * AppointEase fires an action after a booking is created, but cancel
 * (DELETE /appointease/v1/appointments/<id>) and reschedule
 * (PUT /appointease/v1/appointments/<id>) only update the row. This class
 * reads the row before the route's callback runs (to know the previous slot)
 * and queues an event after it, when the response is a success.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Hooks into WordPress and AppointEase.
 */
final class AppointEase_RT_Rest_Hooks {

	const ROUTE_PATTERN = '#^/appointease/v1/appointments/(?P<id>[A-Za-z0-9_-]{1,40})/?$#';

	/**
	 * Rows read before the callbacks, keyed by spl_object_id() of the request.
	 *
	 * @var array<int, array|null>
	 */
	private $before = array();

	/**
	 * Registers the WordPress hooks.
	 */
	public function register(): void {
		add_action( 'appointease_appointment_created', array( $this, 'on_created' ), 10, 1 );
		add_action( 'appointease_new_appointment', array( $this, 'on_created' ), 10, 1 );
		add_filter( 'rest_request_before_callbacks', array( $this, 'before_callbacks' ), 10, 3 );
		add_filter( 'rest_request_after_callbacks', array( $this, 'after_callbacks' ), 10, 3 );
	}

	/**
	 * Handler of both "appointment created" actions.
	 *
	 * @param mixed $data ['appointment_id' => strong_id, 'appointment' => [...], ...].
	 */
	public function on_created( $data ): void {
		if ( ! is_array( $data ) || ! isset( $data['appointment_id'] ) || '' === (string) $data['appointment_id'] ) {
			return;
		}
		$id = $data['appointment_id'];
		// Both actions may fire for one booking: queue it once per request.
		static $seen = array();
		if ( isset( $seen[ (string) $id ] ) ) {
			return;
		}
		$seen[ (string) $id ] = true;
		appointease_realtime_notify( 'appointment.created', is_numeric( $id ) ? (int) $id : (string) $id );
	}

	/**
	 * Remembers the row a cancel/reschedule is about to change.
	 *
	 * @param mixed           $response Result so far (passed through untouched).
	 * @param array           $handler  Route handler.
	 * @param WP_REST_Request $request  Request.
	 * @return mixed
	 */
	public function before_callbacks( $response, $handler, $request ) {
		$id = $this->watched_id( $request );
		if ( null !== $id ) {
			$this->before[ spl_object_id( $request ) ] = self::find_appointment( $id );
		}
		return $response;
	}

	/**
	 * Queues appointment.cancelled / appointment.updated after a successful call.
	 *
	 * @param mixed           $response Result of the callback (passed through untouched).
	 * @param array           $handler  Route handler.
	 * @param WP_REST_Request $request  Request.
	 * @return mixed
	 */
	public function after_callbacks( $response, $handler, $request ) {
		$id = $this->watched_id( $request );
		if ( null === $id ) {
			return $response;
		}
		$key = spl_object_id( $request );
		$row = $this->before[ $key ] ?? null;
		unset( $this->before[ $key ] );
		if ( ! self::is_success( $response ) ) {
			return $response;
		}

		$event_id = null !== $row ? (int) $row['id'] : ( ctype_digit( $id ) ? (int) $id : $id );
		if ( 'DELETE' === $request->get_method() ) {
			appointease_realtime_notify( 'appointment.cancelled', $event_id );
			return $response;
		}
		$extra = array();
		if ( null !== $row && ! empty( $row['appointment_date'] ) ) {
			$extra['previous'] = array(
				'appointment_date' => (string) $row['appointment_date'],
				'employee_id'      => null === $row['employee_id'] ? null : (int) $row['employee_id'],
			);
		}
		appointease_realtime_notify( 'appointment.updated', $event_id, $extra );
		return $response;
	}

	/**
	 * The <id> of a DELETE/PUT on AppointEase's appointment route, or null.
	 *
	 * @param mixed $request Request.
	 */
	private function watched_id( $request ): ?string {
		if ( ! $request instanceof WP_REST_Request ) {
			return null;
		}
		$method = $request->get_method();
		if ( 'DELETE' !== $method && 'PUT' !== $method ) {
			return null;
		}
		if ( 1 !== preg_match( self::ROUTE_PATTERN, (string) $request->get_route(), $m ) ) {
			return null;
		}
		return $m['id'];
	}

	/**
	 * Whether a REST result is a success (no WP_Error, status < 300, no "success": false).
	 *
	 * @param mixed $response Result.
	 */
	private static function is_success( $response ): bool {
		if ( is_wp_error( $response ) ) {
			return false;
		}
		$data = $response;
		if ( $response instanceof WP_HTTP_Response ) {
			if ( $response->get_status() >= 300 ) {
				return false;
			}
			$data = $response->get_data();
		}
		if ( is_array( $data ) && array_key_exists( 'success', $data ) && false === $data['success'] ) {
			return false;
		}
		if ( is_object( $data ) && isset( $data->success ) && false === $data->success ) {
			return false;
		}
		return true;
	}

	/**
	 * Reads id, appointment_date and employee_id of an appointment by numeric id or strong_id.
	 *
	 * @param string $id Numeric id or strong_id.
	 * @return array{id: string, strong_id: string|null, appointment_date: string, employee_id: string|null}|null
	 */
	public static function find_appointment( string $id ): ?array {
		global $wpdb;
		$table = $wpdb->prefix . 'appointments';
		if ( ctype_digit( $id ) ) {
			$sql = $wpdb->prepare( "SELECT id, strong_id, appointment_date, employee_id FROM {$table} WHERE id = %d LIMIT 1", (int) $id ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		} else {
			$sql = $wpdb->prepare( "SELECT id, strong_id, appointment_date, employee_id FROM {$table} WHERE strong_id = %s LIMIT 1", $id ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		}
		$row = $wpdb->get_row( $sql, ARRAY_A ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared
		return is_array( $row ) ? $row : null;
	}
}
