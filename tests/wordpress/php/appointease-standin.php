<?php
/**
 * Plugin Name: AppointEase stand-in (TEST ONLY)
 * Description: The few parts of the AppointEase booking plugin that the bridge hooks into, for the throw-away test WordPress. Never install this on a real site: every route is open to anyone.
 *
 * - POST   /appointease/v1/appointments        create (fires appointease_appointment_created,
 *          or appointease_new_appointment when "hook": "new_appointment")
 * - DELETE /appointease/v1/appointments/<id>   cancel: status = 'cancelled' via $wpdb->update, no action
 * - PUT    /appointease/v1/appointments/<id>   reschedule: appointment_date = new_date, no action
 * <id> is the numeric id or the strong_id. The bodies are those of the booking
 * block (booking-block.md): POST {"name", "email", "phone", "date": "Y-m-d H:i:s",
 * "service_id", "employee_id"} (tests may also send "date": "Y-m-d" + "time", and
 * "client_id"), answered 201 {"success": true, "id", "strong_id"}; PUT {"new_date":
 * "Y-m-d H:i:s", "reason"}, answered 200 {"success": true, "id", "new_date"}.
 * Before inserting, the create route calls appointease_realtime_can_book() exactly
 * as the bridge README asks the real plugin to do (409 "slot_held" when another
 * client holds the slot; without a "client_id" the bridge uses the hold cookie).
 * The bridge's own guard (AppointEase_RT_Hold_Guard) runs before any of this.
 *
 * Front end: every page enqueues the booking block's script with
 * bookingAPI = {root, nonce, wsUrl} localized, like AppointEase. A customer
 * session (AppointEase logs customers in by e-mail + one-time code) is faked
 * with the cookie "aert_standin_customer" = the e-mail, answered through the
 * bridge's "appointease_rt_current_customer_email" filter. Unsigned: test only.
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

function aert_standin_table() {
	global $wpdb;
	return $wpdb->prefix . 'appointments';
}

function aert_standin_find( $id ) {
	global $wpdb;
	$table = aert_standin_table();
	if ( ctype_digit( (string) $id ) ) {
		return $wpdb->get_row( $wpdb->prepare( "SELECT * FROM {$table} WHERE id = %d", (int) $id ), ARRAY_A );
	}
	return $wpdb->get_row( $wpdb->prepare( "SELECT * FROM {$table} WHERE strong_id = %s", (string) $id ), ARRAY_A );
}

function aert_standin_create( WP_REST_Request $request ) {
	global $wpdb;
	$date = (string) $request->get_param( 'date' );
	$time = (string) $request->get_param( 'time' );
	if ( '' !== $time ) {
		$date = $date . ' ' . ( 5 === strlen( $time ) ? $time . ':00' : $time );
	}
	if ( ! preg_match( '/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/', $date ) ) {
		return new WP_REST_Response( array( 'success' => false, 'code' => 'bad_date', 'message' => 'date must be Y-m-d H:i:s (or date + time)' ), 400 );
	}
	$employee_id = (int) $request->get_param( 'employee_id' );
	$client_id   = (string) $request->get_param( 'client_id' );
	list( $day, $clock ) = explode( ' ', $date );

	if ( function_exists( 'appointease_realtime_can_book' ) && ! appointease_realtime_can_book( $day, $clock, $employee_id, $client_id ) ) {
		return new WP_REST_Response( array( 'success' => false, 'code' => 'slot_held', 'message' => 'This time slot is being booked by another user.' ), 409 );
	}
	$taken = $wpdb->get_var(
		$wpdb->prepare( 'SELECT id FROM ' . aert_standin_table() . " WHERE appointment_date = %s AND employee_id = %d AND status <> 'cancelled' LIMIT 1", $date, $employee_id )
	);
	if ( null !== $taken ) {
		return new WP_REST_Response( array( 'success' => false, 'code' => 'slot_taken', 'message' => 'This time slot was just booked by another user.' ), 409 );
	}
	$row = array(
		'name'             => (string) ( $request->get_param( 'name' ) ?? 'Test Customer' ),
		'email'            => (string) ( $request->get_param( 'email' ) ?? 'customer@example.org' ),
		'phone'            => (string) ( $request->get_param( 'phone' ) ?? '' ),
		'appointment_date' => $date,
		'status'           => 'confirmed',
		'service_id'       => (int) ( $request->get_param( 'service_id' ) ?? 1 ),
		'employee_id'      => $employee_id,
	);
	if ( false === $wpdb->insert( aert_standin_table(), $row ) ) {
		return new WP_REST_Response( array( 'success' => false, 'code' => 'db_error', 'message' => $wpdb->last_error ), 500 );
	}
	$id        = (int) $wpdb->insert_id;
	$strong_id = sprintf( 'APT-%s-%06d', gmdate( 'Y' ), $id );
	$wpdb->update( aert_standin_table(), array( 'strong_id' => $strong_id ), array( 'id' => $id ) );

	$data = array(
		'event'          => 'appointment.created',
		'appointment_id' => $strong_id,
		'customer'       => array(
			'name'  => $row['name'],
			'email' => $row['email'],
			'phone' => $row['phone'],
		),
		'appointment'    => array(
			'date'        => $date,
			'service_id'  => $row['service_id'],
			'employee_id' => $employee_id,
		),
		'timestamp'      => current_time( 'mysql' ),
	);
	$hook = 'new_appointment' === $request->get_param( 'hook' ) ? 'appointease_new_appointment' : 'appointease_appointment_created';
	do_action( $hook, $data );

	return new WP_REST_Response(
		array(
			'success'        => true,
			'id'             => $id,
			'strong_id'      => $strong_id,
			'appointment_id' => $strong_id,
		),
		201
	);
}

function aert_standin_cancel( WP_REST_Request $request ) {
	global $wpdb;
	$row = aert_standin_find( $request['id'] );
	if ( ! $row ) {
		return new WP_Error( 'not_found', 'Appointment not found', array( 'status' => 404 ) );
	}
	$wpdb->update( aert_standin_table(), array( 'status' => 'cancelled' ), array( 'id' => (int) $row['id'] ) );
	return array( 'success' => true, 'id' => (int) $row['id'] );
}

function aert_standin_reschedule( WP_REST_Request $request ) {
	global $wpdb;
	$row = aert_standin_find( $request['id'] );
	if ( ! $row ) {
		return new WP_Error( 'not_found', 'Appointment not found', array( 'status' => 404 ) );
	}
	$new_date = (string) $request->get_param( 'new_date' );
	if ( ! preg_match( '/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/', $new_date ) ) {
		return new WP_Error( 'bad_date', 'new_date must be Y-m-d H:i:s', array( 'status' => 400 ) );
	}
	$wpdb->update(
		aert_standin_table(),
		array(
			'appointment_date' => $new_date,
			'rescheduled_at'   => current_time( 'mysql' ),
			'original_date'    => $row['appointment_date'],
		),
		array( 'id' => (int) $row['id'] )
	);
	return array( 'success' => true, 'id' => (int) $row['id'], 'new_date' => $new_date );
}

add_action(
	'rest_api_init',
	static function () {
		register_rest_route(
			'appointease/v1',
			'/appointments',
			array(
				'methods'             => 'POST',
				'callback'            => 'aert_standin_create',
				'permission_callback' => '__return_true',
			)
		);
		register_rest_route(
			'appointease/v1',
			'/appointments/(?P<id>[A-Za-z0-9-]+)',
			array(
				array(
					'methods'             => 'DELETE',
					'callback'            => 'aert_standin_cancel',
					'permission_callback' => '__return_true',
				),
				array(
					'methods'             => 'PUT',
					'callback'            => 'aert_standin_reschedule',
					'permission_callback' => '__return_true',
				),
			)
		);
	}
);

add_action(
	'wp_enqueue_scripts',
	static function () {
		wp_register_script( 'appointease-booking-standin', content_url( 'mu-plugins/appointease-booking-standin.js' ), array(), '1.0', true );
		wp_localize_script(
			'appointease-booking-standin',
			'bookingAPI',
			array(
				'root'  => esc_url_raw( rest_url() ),
				'nonce' => wp_create_nonce( 'wp_rest' ),
				'wsUrl' => 'ws://' . wp_parse_url( home_url(), PHP_URL_HOST ) . ':8080',
			)
		);
		wp_enqueue_script( 'appointease-booking-standin' );
	}
);

add_filter(
	'appointease_rt_current_customer_email',
	static function ( $email ) {
		if ( isset( $_COOKIE['aert_standin_customer'] ) ) { // phpcs:ignore WordPress.Security.ValidatedSanitizedInput
			return sanitize_email( wp_unslash( $_COOKIE['aert_standin_customer'] ) ); // phpcs:ignore WordPress.Security.ValidatedSanitizedInput
		}
		return $email;
	}
);

/*
 * Test helper (not AppointEase): admin-ajax.php?action=aert_nonce&for=<action>
 * answers the logged-in user's own nonce for <action>, so a test can show that
 * a user without the capability is refused even with a valid nonce.
 */
add_action(
	'wp_ajax_aert_nonce',
	static function () {
		$for = isset( $_GET['for'] ) ? sanitize_key( wp_unslash( $_GET['for'] ) ) : ''; // phpcs:ignore WordPress.Security
		echo esc_html( wp_create_nonce( $for ) );
		wp_die();
	}
);
