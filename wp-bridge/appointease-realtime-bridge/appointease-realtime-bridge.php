<?php
/**
 * Plugin Name:       AppointEase Realtime Bridge
 * Description:       Tells the AppointEase real-time daemon about booking changes with signed webhooks (Standard Webhooks), points the booking block at the daemon with per-user connection tokens (JWT), and lets AppointEase honour the daemon's slot holds.
 * Version:           0.2.0
 * Requires at least: 6.1
 * Requires PHP:      8.0
 * Author:            AppointEase Realtime
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       appointease-realtime-bridge
 * Domain Path:       /languages
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

define( 'APPOINTEASE_RT_VERSION', '0.2.0' );
define( 'APPOINTEASE_RT_FILE', __FILE__ );

require_once __DIR__ . '/includes/class-signer.php';
require_once __DIR__ . '/includes/class-jwt.php';
require_once __DIR__ . '/includes/class-config.php';
require_once __DIR__ . '/includes/class-client.php';
require_once __DIR__ . '/includes/class-outbox.php';
require_once __DIR__ . '/includes/class-locks.php';
require_once __DIR__ . '/includes/class-hold-cookie.php';
require_once __DIR__ . '/includes/class-hold-guard.php';
require_once __DIR__ . '/includes/class-rest-hooks.php';
require_once __DIR__ . '/includes/class-token.php';
require_once __DIR__ . '/includes/class-ws-url.php';
require_once __DIR__ . '/includes/class-settings-page.php';
require_once __DIR__ . '/includes/class-plugin.php';

register_activation_hook( __FILE__, array( 'AppointEase_RT_Plugin', 'activate' ) );
register_deactivation_hook( __FILE__, array( 'AppointEase_RT_Plugin', 'deactivate' ) );

AppointEase_RT_Plugin::instance()->register();

if ( ! function_exists( 'appointease_realtime_notify' ) ) {
	/**
	 * Queues a booking event for the daemon; it is sent at the end of this
	 * request and retried by WP-Cron until delivered (or dropped after the
	 * last attempt). Never blocks or fails the caller.
	 *
	 * @param string     $type           appointment.created|appointment.updated|appointment.cancelled.
	 * @param int|string $appointment_id Numeric id or strong_id (e.g. APT-2025-000123).
	 * @param array      $extra          More keys for the event's "data", e.g.
	 *                                   ['previous' => ['appointment_date' => 'Y-m-d H:i:s', 'employee_id' => 3]].
	 * @return int|null Outbox id, or null when nothing was queued (not configured, bad arguments).
	 */
	function appointease_realtime_notify( string $type, $appointment_id, array $extra = array() ): ?int {
		return AppointEase_RT_Plugin::instance()->notify( $type, $appointment_id, $extra );
	}
}

if ( ! function_exists( 'appointease_realtime_can_book' ) ) {
	/**
	 * False while ANOTHER client holds a live hold on the slot (expires_at >
	 * the database's NOW()), true otherwise, including for the holder itself.
	 * Call it right before inserting a booking.
	 *
	 * @param string      $date        Y-m-d.
	 * @param string      $time        H:i or H:i:s.
	 * @param int|string  $employee_id Employee id.
	 * @param string|null $client_id   The booking client's daemon clientId; null or '' (unknown):
	 *                                 the one proven by the request's hold cookie
	 *                                 (appointease_rt_hold, set by the daemon), if any.
	 */
	function appointease_realtime_can_book( $date, $time, $employee_id, $client_id = null ): bool {
		global $wpdb;
		if ( null === $client_id || '' === (string) $client_id ) {
			$client_id = AppointEase_RT_Plugin::instance()->hold_client_id();
		}
		$locks   = new AppointEase_RT_Locks( $wpdb );
		$allowed = $locks->can_book( (string) $date, (string) $time, (int) $employee_id, (string) $client_id );
		/**
		 * Filters the result of appointease_realtime_can_book().
		 *
		 * @param bool   $allowed     Whether the booking may proceed.
		 * @param string $date        Date.
		 * @param string $time        Time.
		 * @param int    $employee_id Employee.
		 * @param string $client_id   Client ('' when neither given nor proven by a cookie).
		 */
		return (bool) apply_filters( 'appointease_realtime_can_book', $allowed, (string) $date, (string) $time, (int) $employee_id, (string) $client_id );
	}
}
