<?php
/**
 * Reads the daemon's slot holds from {$wpdb->prefix}appointease_slot_locks.
 *
 * The daemon writes holds into that table (one row per date, time and
 * employee); WordPress only reads them here, right before it inserts a
 * booking. Expiry is compared with the database's NOW(), never PHP's clock:
 * the daemon computes expires_at with the same NOW(), so both agree even when
 * PHP, the daemon and MySQL run in different time zones.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Slot-hold checks.
 */
final class AppointEase_RT_Locks {

	/** @var wpdb|object */
	private $db;

	/**
	 * @param wpdb|object $db The WordPress database object.
	 */
	public function __construct( $db ) {
		$this->db = $db;
	}

	/**
	 * Full name of the lock table.
	 */
	public function table(): string {
		return $this->db->prefix . 'appointease_slot_locks';
	}

	/**
	 * The client that holds a live lock on the slot, or null.
	 *
	 * @param string $date        Y-m-d.
	 * @param string $time        H:i or H:i:s.
	 * @param int    $employee_id Employee.
	 */
	public function holder( string $date, string $time, int $employee_id ): ?string {
		$lock = $this->live_lock( $date, $time, $employee_id );
		return null === $lock ? null : $lock['client_id'];
	}

	/**
	 * The live lock on the slot (its holder and the seconds it has left, at least 1), or null.
	 * Both the liveness and the seconds left come from the database's NOW().
	 *
	 * @param string $date        Y-m-d.
	 * @param string $time        H:i or H:i:s.
	 * @param int    $employee_id Employee.
	 * @return array{client_id: string, expires_in: int}|null
	 */
	public function live_lock( string $date, string $time, int $employee_id ): ?array {
		$date = self::normalize_date( $date );
		$time = self::normalize_time( $time );
		if ( null === $date || null === $time ) {
			return null;
		}
		$suppress = $this->db->suppress_errors( true );
		$row      = $this->db->get_row(
			$this->db->prepare(
				"SELECT client_id, TIMESTAMPDIFF(SECOND, NOW(), expires_at) AS expires_in FROM {$this->table()} WHERE `date` = %s AND `time` = %s AND employee_id = %d AND expires_at > NOW() LIMIT 1", // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
				$date,
				$time,
				$employee_id
			),
			ARRAY_A
		);
		$error = (string) $this->db->last_error;
		$this->db->suppress_errors( $suppress );
		if ( '' !== $error && false === stripos( $error, "doesn't exist" ) ) {
			// Fail open: a broken lock table must not stop bookings; the booking insert itself
			// will fail if the database is really down.
			error_log( '[appointease-realtime-bridge] slot lock check failed: ' . $error ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
		}
		if ( ! is_array( $row ) || ! isset( $row['client_id'] ) ) {
			return null;
		}
		return array(
			'client_id'  => (string) $row['client_id'],
			'expires_in' => max( 1, (int) $row['expires_in'] ),
		);
	}

	/**
	 * Splits "Y-m-d H:i[:s]" (or "Y-m-dTH:i[:s]") into array( date, time ), or null.
	 *
	 * @param string $datetime Candidate.
	 * @return array{0: string, 1: string}|null
	 */
	public static function split_datetime( string $datetime ): ?array {
		if ( 1 !== preg_match( '/^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}(?::\d{2})?)$/', trim( $datetime ), $m ) ) {
			return null;
		}
		return array( $m[1], $m[2] );
	}

	/**
	 * False while ANOTHER client holds a live lock on the slot, true otherwise.
	 *
	 * @param string $date        Y-m-d (a "Y-m-d H:i:s" value is accepted and split when $time is empty).
	 * @param string $time        H:i or H:i:s.
	 * @param int    $employee_id Employee.
	 * @param string $client_id   The booking client's id as the daemon knows it ('' if unknown).
	 */
	public function can_book( string $date, string $time, int $employee_id, string $client_id ): bool {
		if ( '' === trim( $time ) ) {
			$split = self::split_datetime( $date );
			if ( null !== $split ) {
				list( $date, $time ) = $split;
			}
		}
		$holder = $this->holder( $date, $time, $employee_id );
		return null === $holder || ( '' !== $client_id && hash_equals( $holder, $client_id ) );
	}

	/**
	 * "Y-m-d" or null.
	 *
	 * @param string $date Candidate.
	 */
	private static function normalize_date( string $date ): ?string {
		$date = trim( $date );
		return 1 === preg_match( '/^\d{4}-\d{2}-\d{2}$/', $date ) ? $date : null;
	}

	/**
	 * "H:i:s" or null.
	 *
	 * @param string $time Candidate.
	 */
	private static function normalize_time( string $time ): ?string {
		$time = trim( $time );
		if ( 1 === preg_match( '/^\d{1,2}:\d{2}$/', $time ) ) {
			$time .= ':00';
		}
		if ( 1 !== preg_match( '/^(\d{1,2}):(\d{2}):(\d{2})$/', $time, $m ) ) {
			return null;
		}
		return sprintf( '%02d:%02d:%02d', (int) $m[1], (int) $m[2], (int) $m[3] );
	}
}
