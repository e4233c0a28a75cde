<?php
/**
 * Durable outbox of booking events waiting for delivery to the daemon.
 *
 * Why a table and not an option: an option is one serialized value that is
 * read, modified and written back; two requests appending at the same time
 * both read the old list and the second write silently drops the first
 * event. An INSERT into an AUTO_INCREMENT table is atomic and also gives a
 * total order (the id) for "never send an event while an older event of the
 * same appointment is pending". Due times and claims use the database clock
 * (UNIX_TIMESTAMP()), so several web servers with skewed clocks agree.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Append-only queue with retries, exponential backoff and per-appointment order.
 */
final class AppointEase_RT_Outbox {

	const LAST_ERROR_OPTION = 'appointease_rt_last_error';
	const DB_VERSION_OPTION = 'appointease_rt_db_version';
	const DB_VERSION        = '1';
	const CLAIM_SECONDS     = 30;

	/** @var wpdb|object */
	private $db;

	/** @var callable(string, string): array{ok: bool, status: int, error: string} */
	private $sender;

	/** @var int */
	private $max_attempts;

	/** @var int */
	private $base_delay;

	/** @var int */
	private $max_delay;

	/** @var bool Whether the table was (re)created during this request. */
	private $installed = false;

	/**
	 * @param wpdb|object $db           The WordPress database object.
	 * @param callable    $sender       fn(string $webhook_id, string $body): array{ok, status, error}.
	 * @param int         $max_attempts An event is dropped after this many failed attempts.
	 * @param int         $base_delay   Delay after the first failure (seconds); doubles each time.
	 * @param int         $max_delay    Upper bound of one delay (seconds).
	 */
	public function __construct( $db, callable $sender, int $max_attempts = 8, int $base_delay = 30, int $max_delay = 3600 ) {
		$this->db           = $db;
		$this->sender       = $sender;
		$this->max_attempts = max( 1, $max_attempts );
		$this->base_delay   = max( 0, $base_delay );
		$this->max_delay    = max( $this->base_delay, $max_delay );
	}

	/**
	 * Full table name for a prefix.
	 *
	 * @param string $prefix $wpdb->prefix.
	 */
	public static function table_name( string $prefix ): string {
		return $prefix . 'appointease_rt_outbox';
	}

	/**
	 * This outbox's table.
	 */
	public function table(): string {
		return self::table_name( $this->db->prefix );
	}

	/**
	 * Creates or upgrades the table with dbDelta.
	 */
	public function install(): void {
		if ( ! function_exists( 'dbDelta' ) ) {
			require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		}
		$table   = $this->table();
		$charset = $this->db->get_charset_collate();
		// dbDelta is picky: one column per line, two spaces after PRIMARY KEY, KEY not INDEX.
		$sql = "CREATE TABLE {$table} (
  id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  webhook_id varchar(64) NOT NULL,
  event_type varchar(64) NOT NULL,
  appointment_key varchar(64) NOT NULL,
  payload longtext NOT NULL,
  attempts smallint(5) unsigned NOT NULL DEFAULT 0,
  next_attempt_at bigint(20) unsigned NOT NULL DEFAULT 0,
  claimed_until bigint(20) unsigned NOT NULL DEFAULT 0,
  last_status smallint(5) unsigned NOT NULL DEFAULT 0,
  last_error text NULL,
  created_at datetime NOT NULL,
  PRIMARY KEY  (id),
  UNIQUE KEY webhook_id (webhook_id),
  KEY appointment_key (appointment_key,id),
  KEY next_attempt_at (next_attempt_at)
) {$charset};";
		dbDelta( $sql );
		update_option( self::DB_VERSION_OPTION, self::DB_VERSION, true );
		$this->installed = true;
	}

	/**
	 * Creates the table when the stored schema version is not the current one.
	 */
	public function maybe_install(): void {
		if ( self::DB_VERSION !== get_option( self::DB_VERSION_OPTION ) ) {
			$this->install();
		}
	}

	/**
	 * Drops the table (uninstall).
	 */
	public function drop(): void {
		$this->db->query( 'DROP TABLE IF EXISTS ' . $this->table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared
	}

	/**
	 * Appends one event. Never sends anything.
	 *
	 * @param string     $type           Event type, e.g. appointment.created.
	 * @param int|string $appointment_id Numeric id or strong_id, as sent in data.id.
	 * @param array      $extra          More keys for "data" (e.g. "previous").
	 * @param string     $ordering_key   Events with the same key are delivered in order.
	 * @return int|null The outbox row id, or null when the insert failed.
	 */
	public function enqueue( string $type, $appointment_id, array $extra = array(), string $ordering_key = '' ): ?int {
		$data       = array_merge( array( 'id' => $appointment_id ), $extra );
		$data['id'] = $appointment_id;
		$payload    = wp_json_encode(
			array(
				'type'      => $type,
				'timestamp' => gmdate( 'Y-m-d\TH:i:s\Z' ),
				'data'      => (object) $data,
			),
			JSON_UNESCAPED_SLASHES
		);
		if ( false === $payload ) {
			return null;
		}
		if ( '' === $ordering_key ) {
			$ordering_key = (string) $appointment_id;
		}
		$row = array(
			'webhook_id'      => self::new_webhook_id(),
			'event_type'      => substr( $type, 0, 64 ),
			'appointment_key' => substr( $ordering_key, 0, 64 ),
			'payload'         => $payload,
			'attempts'        => 0,
			'next_attempt_at' => 0,
			'claimed_until'   => 0,
			'created_at'      => gmdate( 'Y-m-d H:i:s' ),
		);
		$formats = array( '%s', '%s', '%s', '%s', '%d', '%d', '%d', '%s' );

		$suppress = $this->db->suppress_errors( true );
		$ok       = $this->db->insert( $this->table(), $row, $formats );
		if ( ! $ok && ! $this->installed ) {
			// Lazily create the table (e.g. the plugin files were copied without activation).
			$this->install();
			$ok = $this->db->insert( $this->table(), $row, $formats );
		}
		$this->db->suppress_errors( $suppress );
		if ( ! $ok ) {
			error_log( sprintf( '[appointease-realtime-bridge] could not queue %s for appointment %s: %s', $type, (string) $appointment_id, (string) $this->db->last_error ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			return null;
		}
		return (int) $this->db->insert_id;
	}

	/**
	 * Delivers due events, oldest first, at most one pending event per appointment at a time.
	 *
	 * @param int[]|null $only_ids      Restrict to these outbox ids (events queued by this request).
	 * @param int        $limit         Maximum number of delivery attempts in this call.
	 * @param float      $time_budget   Stop starting new attempts after this many seconds.
	 * @return array{delivered: int, failed: int, dropped: int}
	 */
	public function flush( ?array $only_ids = null, int $limit = 50, float $time_budget = 20.0 ): array {
		$stats   = array(
			'delivered' => 0,
			'failed'    => 0,
			'dropped'   => 0,
		);
		$started = microtime( true );
		$tried   = array();
		$table   = $this->table();

		if ( null !== $only_ids ) {
			$only_ids = array_values( array_filter( array_map( 'intval', $only_ids ) ) );
			if ( array() === $only_ids ) {
				return $stats;
			}
		}

		while ( count( $tried ) < $limit ) {
			// Only the oldest pending event of each appointment is eligible.
			$sql = "SELECT o.id, o.webhook_id, o.event_type, o.appointment_key, o.payload, o.attempts
				FROM {$table} o
				WHERE o.next_attempt_at <= UNIX_TIMESTAMP()
				AND o.claimed_until <= UNIX_TIMESTAMP()
				AND NOT EXISTS (SELECT 1 FROM {$table} p WHERE p.appointment_key = o.appointment_key AND p.id < o.id)";
			if ( null !== $only_ids ) {
				$sql .= ' AND o.id IN (' . implode( ',', $only_ids ) . ')';
			}
			if ( array() !== $tried ) {
				$sql .= ' AND o.id NOT IN (' . implode( ',', array_keys( $tried ) ) . ')';
			}
			$sql .= $this->db->prepare( ' ORDER BY o.id ASC LIMIT %d', $limit - count( $tried ) );

			$rows = $this->db->get_results( $sql, ARRAY_A ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- ids are intval'd, the rest is prepared.
			if ( empty( $rows ) ) {
				break;
			}
			$progress = false;
			foreach ( $rows as $row ) {
				$tried[ (int) $row['id'] ] = true;
				if ( microtime( true ) - $started > $time_budget ) {
					return $stats;
				}
				if ( ! $this->claim( (int) $row['id'] ) ) {
					continue; // Another request is delivering it.
				}
				$result = call_user_func( $this->sender, (string) $row['webhook_id'], (string) $row['payload'] );
				if ( ! empty( $result['ok'] ) ) {
					$this->db->delete( $table, array( 'id' => (int) $row['id'] ), array( '%d' ) );
					++$stats['delivered'];
					$progress = true;
					continue;
				}
				$status = (int) ( $result['status'] ?? 0 );
				$error  = (string) ( $result['error'] ?? '' );
				if ( $this->record_failure( $row, $status, $error ) ) {
					++$stats['dropped'];
					$progress = true; // The next event of that appointment became eligible.
				} else {
					++$stats['failed'];
				}
				if ( 0 === $status ) {
					// Transport error: the daemon is unreachable, the rest would only wait for timeouts.
					return $stats;
				}
			}
			if ( ! $progress ) {
				break;
			}
		}
		return $stats;
	}

	/**
	 * Number of queued events.
	 */
	public function count(): int {
		return (int) $this->db->get_var( 'SELECT COUNT(*) FROM ' . $this->table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared
	}

	/**
	 * Number of queued events that could be attempted now.
	 */
	public function count_due(): int {
		return (int) $this->db->get_var( 'SELECT COUNT(*) FROM ' . $this->table() . ' WHERE next_attempt_at <= UNIX_TIMESTAMP()' ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared
	}

	/**
	 * Delay before the next attempt after $attempts failed attempts.
	 *
	 * @param int $attempts Failed attempts so far (>= 1).
	 */
	public function backoff_delay( int $attempts ): int {
		$exponent = min( max( 0, $attempts - 1 ), 30 );
		return (int) min( $this->max_delay, $this->base_delay * ( 2 ** $exponent ) );
	}

	/**
	 * Maximum attempts per event.
	 */
	public function max_attempts(): int {
		return $this->max_attempts;
	}

	/**
	 * The last recorded delivery error, or null.
	 *
	 * @return array{time: int, webhook_id: string, type: string, status: int, error: string, dropped: bool}|null
	 */
	public static function last_error(): ?array {
		$value = get_option( self::LAST_ERROR_OPTION, null );
		return is_array( $value ) ? $value : null;
	}

	/**
	 * Records a delivery error for the settings page.
	 *
	 * @param string $webhook_id Event id.
	 * @param string $type       Event type.
	 * @param int    $status     HTTP status, 0 for a transport error.
	 * @param string $error      Message.
	 * @param bool   $dropped    Whether the event was given up.
	 */
	public static function record_last_error( string $webhook_id, string $type, int $status, string $error, bool $dropped ): void {
		update_option(
			self::LAST_ERROR_OPTION,
			array(
				'time'       => time(),
				'webhook_id' => $webhook_id,
				'type'       => $type,
				'status'     => $status,
				'error'      => $error,
				'dropped'    => $dropped,
			),
			false
		);
	}

	/**
	 * Atomically takes a row for CLAIM_SECONDS so that two flushers do not both send it.
	 *
	 * @param int $id Outbox id.
	 */
	private function claim( int $id ): bool {
		$affected = $this->db->query(
			$this->db->prepare(
				"UPDATE {$this->table()} SET claimed_until = UNIX_TIMESTAMP() + %d WHERE id = %d AND claimed_until <= UNIX_TIMESTAMP()", // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
				self::CLAIM_SECONDS,
				$id
			)
		);
		return 1 === (int) $affected;
	}

	/**
	 * Counts a failed attempt; drops the event after the last one.
	 *
	 * @param array  $row    Outbox row.
	 * @param int    $status HTTP status or 0.
	 * @param string $error  Message.
	 * @return bool True when the event was dropped.
	 */
	private function record_failure( array $row, int $status, string $error ): bool {
		$attempts = (int) $row['attempts'] + 1;
		$error    = substr( '' === $error ? 'unknown error' : $error, 0, 1000 );
		$table    = $this->table();
		if ( $attempts >= $this->max_attempts ) {
			$this->db->delete( $table, array( 'id' => (int) $row['id'] ), array( '%d' ) );
			error_log( // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
				sprintf(
					'[appointease-realtime-bridge] dropped %s %s (appointment %s) after %d attempts; last error: %s',
					$row['event_type'],
					$row['webhook_id'],
					$row['appointment_key'],
					$attempts,
					$error
				)
			);
			self::record_last_error( (string) $row['webhook_id'], (string) $row['event_type'], $status, $error, true );
			return true;
		}
		$this->db->query(
			$this->db->prepare(
				"UPDATE {$table} SET attempts = %d, next_attempt_at = UNIX_TIMESTAMP() + %d, claimed_until = 0, last_status = %d, last_error = %s WHERE id = %d", // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
				$attempts,
				$this->backoff_delay( $attempts ),
				$status,
				$error,
				(int) $row['id']
			)
		);
		error_log( // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			sprintf(
				'[appointease-realtime-bridge] delivery of %s %s failed (attempt %d/%d, status %d): %s',
				$row['event_type'],
				$row['webhook_id'],
				$attempts,
				$this->max_attempts,
				$status,
				$error
			)
		);
		self::record_last_error( (string) $row['webhook_id'], (string) $row['event_type'], $status, $error, false );
		return false;
	}

	/**
	 * A new Standard Webhooks message id: "msg_" + 32 hex characters.
	 */
	public static function new_webhook_id(): string {
		return 'msg_' . bin2hex( random_bytes( 16 ) );
	}
}
