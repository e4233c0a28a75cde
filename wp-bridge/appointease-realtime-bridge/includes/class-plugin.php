<?php
/**
 * Wires configuration, outbox, HTTP client, hooks and admin page together.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The plugin (one instance per request).
 */
final class AppointEase_RT_Plugin {

	const CRON_HOOK     = 'appointease_rt_flush_outbox';
	const CRON_SCHEDULE = 'appointease_rt_every_minute';

	/** @var self|null */
	private static $instance = null;

	/** @var AppointEase_RT_Config */
	private $config;

	/** @var AppointEase_RT_Client|null */
	private $client = null;

	/** @var AppointEase_RT_Outbox|null */
	private $outbox = null;

	/** @var AppointEase_RT_Hold_Guard|null */
	private $hold_guard = null;

	/** @var int[] Outbox ids queued during this request. */
	private $queued = array();

	/** @var bool */
	private $shutdown_registered = false;

	/**
	 * @param AppointEase_RT_Config $config Configuration.
	 */
	public function __construct( AppointEase_RT_Config $config ) {
		$this->config = $config;
	}

	/**
	 * The shared instance.
	 */
	public static function instance(): self {
		if ( null === self::$instance ) {
			self::$instance = new self( AppointEase_RT_Config::load() );
		}
		return self::$instance;
	}

	/**
	 * Registers every hook of the plugin.
	 */
	public function register(): void {
		add_filter( 'cron_schedules', array( __CLASS__, 'cron_schedules' ) ); // phpcs:ignore WordPress.WP.CronInterval.ChangeDetected
		add_action( self::CRON_HOOK, array( $this, 'cron_flush' ) );
		add_action( 'plugins_loaded', array( $this, 'load_textdomain' ) );
		add_action( 'init', array( $this, 'maybe_upgrade' ) );
		add_action( 'wp_enqueue_scripts', array( __CLASS__, 'register_client_script' ), 5 );
		( new AppointEase_RT_Rest_Hooks() )->register();
		$this->hold_guard()->register();
		$tokens = new AppointEase_RT_Token( $this->config );
		$tokens->register();
		( new AppointEase_RT_Ws_Url( $this->config, $tokens ) )->register();
		if ( is_admin() ) {
			( new AppointEase_RT_Settings_Page( $this ) )->register();
		}
	}

	/**
	 * Registers (does not enqueue) the browser client, so the booking block can list
	 * 'appointease-realtime-client' as a dependency and use window.AppointEaseRealtime.
	 */
	public static function register_client_script(): void {
		wp_register_script(
			'appointease-realtime-client',
			plugins_url( 'assets/realtime-client.js', APPOINTEASE_RT_FILE ),
			array(),
			APPOINTEASE_RT_VERSION,
			true
		);
	}

	/**
	 * Loads translations.
	 */
	public function load_textdomain(): void {
		load_plugin_textdomain( 'appointease-realtime-bridge', false, dirname( plugin_basename( APPOINTEASE_RT_FILE ) ) . '/languages' );
	}

	/**
	 * Creates the outbox table when the schema version changed (or it was never activated).
	 */
	public function maybe_upgrade(): void {
		$this->outbox()->maybe_install();
	}

	/**
	 * Activation: on this site, or on every site of the network when network-activated.
	 *
	 * @param bool $network_wide Network activation (multisite).
	 */
	public static function activate( $network_wide = false ): void {
		if ( $network_wide && is_multisite() ) {
			foreach ( self::site_ids() as $site_id ) {
				switch_to_blog( $site_id );
				self::activate_site();
				restore_current_blog();
			}
			return;
		}
		self::activate_site();
	}

	/**
	 * Every site id of a multisite installation, in pages (get_sites() alone stops at 100).
	 *
	 * @return int[]
	 */
	public static function site_ids(): array {
		$ids    = array();
		$offset = 0;
		do {
			$page = get_sites(
				array(
					'fields'                 => 'ids',
					'number'                 => 100,
					'offset'                 => $offset,
					'orderby'                => 'id',
					'order'                  => 'ASC',
					'update_site_meta_cache' => false,
				)
			);
			$ids     = array_merge( $ids, array_map( 'intval', $page ) );
			$offset += 100;
		} while ( 100 === count( $page ) );
		return $ids;
	}

	/**
	 * Activation on the current site: the table, the retry cron, the staff capability for administrators.
	 */
	public static function activate_site(): void {
		self::instance()->outbox()->install(); // Uses $wpdb->prefix of the current site.
		self::schedule_cron();
		$admin = get_role( 'administrator' );
		if ( null !== $admin ) {
			$admin->add_cap( AppointEase_RT_Token::STAFF_CAPABILITY );
		}
	}

	/**
	 * Deactivation: stop the cron (queued events stay for a later reactivation).
	 *
	 * @param bool $network_wide Network deactivation (multisite).
	 */
	public static function deactivate( $network_wide = false ): void {
		if ( $network_wide && is_multisite() ) {
			foreach ( self::site_ids() as $site_id ) {
				switch_to_blog( $site_id );
				wp_clear_scheduled_hook( self::CRON_HOOK );
				restore_current_blog();
			}
			return;
		}
		wp_clear_scheduled_hook( self::CRON_HOOK );
	}

	/**
	 * Adds the one-minute schedule.
	 *
	 * @param array $schedules Schedules.
	 * @return array
	 */
	public static function cron_schedules( $schedules ) {
		$schedules[ self::CRON_SCHEDULE ] = array(
			'interval' => MINUTE_IN_SECONDS,
			'display'  => __( 'Every minute (AppointEase Realtime outbox)', 'appointease-realtime-bridge' ),
		);
		return $schedules;
	}

	/**
	 * Schedules the retry cron unless it already is.
	 */
	public static function schedule_cron(): void {
		if ( false === wp_next_scheduled( self::CRON_HOOK ) ) {
			wp_schedule_event( time() + MINUTE_IN_SECONDS, self::CRON_SCHEDULE, self::CRON_HOOK );
		}
	}

	/**
	 * Configuration.
	 */
	public function config(): AppointEase_RT_Config {
		return $this->config;
	}

	/**
	 * HTTP client.
	 */
	public function client(): AppointEase_RT_Client {
		if ( null === $this->client ) {
			$timeout      = (float) apply_filters( 'appointease_rt_http_timeout', 2.0 );
			$this->client = new AppointEase_RT_Client( $this->config, $timeout );
		}
		return $this->client;
	}

	/**
	 * Outbox.
	 */
	public function outbox(): AppointEase_RT_Outbox {
		global $wpdb;
		if ( null === $this->outbox ) {
			$client       = $this->client();
			$this->outbox = new AppointEase_RT_Outbox(
				$wpdb,
				static function ( string $webhook_id, string $body ) use ( $client ): array {
					return $client->deliver( $webhook_id, $body );
				},
				(int) apply_filters( 'appointease_rt_max_attempts', 8 ),
				(int) apply_filters( 'appointease_rt_backoff_base', 30 ),
				(int) apply_filters( 'appointease_rt_backoff_max', HOUR_IN_SECONDS )
			);
		}
		return $this->outbox;
	}

	/**
	 * The booking-time hold check.
	 */
	public function hold_guard(): AppointEase_RT_Hold_Guard {
		global $wpdb;
		if ( null === $this->hold_guard ) {
			$this->hold_guard = new AppointEase_RT_Hold_Guard( $this->config, new AppointEase_RT_Locks( $wpdb ) );
		}
		return $this->hold_guard;
	}

	/**
	 * The clientId proven by this request's hold cookie ('' when none, or no usable token secret).
	 */
	public function hold_client_id(): string {
		return (string) $this->hold_guard()->cookie_client_id();
	}

	/**
	 * Queues an event and arranges its delivery at the end of the request.
	 *
	 * @param string     $type           appointment.created|appointment.updated|appointment.cancelled.
	 * @param int|string $appointment_id Numeric id or strong_id.
	 * @param array      $extra          More "data" keys (e.g. "previous").
	 * @return int|null Outbox id, or null when nothing was queued.
	 */
	public function notify( string $type, $appointment_id, array $extra = array() ): ?int {
		if ( ! $this->config->can_deliver() ) {
			return null; // Not configured: nothing is queued, the settings page says why.
		}
		if ( 1 !== preg_match( '/^[a-z0-9_]+(\.[a-z0-9_]+)+$/i', $type ) ) {
			return null;
		}
		if ( ! is_int( $appointment_id ) && ! is_string( $appointment_id ) ) {
			return null;
		}
		if ( is_string( $appointment_id ) && ctype_digit( $appointment_id ) ) {
			$appointment_id = (int) $appointment_id;
		}
		$id = $this->outbox()->enqueue( $type, $appointment_id, $extra, $this->ordering_key( $appointment_id ) );
		if ( null === $id ) {
			return null;
		}
		$this->queued[] = $id;
		if ( ! $this->shutdown_registered ) {
			$this->shutdown_registered = true;
			add_action( 'shutdown', array( $this, 'flush_queued' ), 1000 );
		}
		self::schedule_cron();
		return $id;
	}

	/**
	 * One key per appointment whether it is named by numeric id or strong_id.
	 *
	 * @param int|string $appointment_id Numeric id or strong_id.
	 */
	private function ordering_key( $appointment_id ): string {
		if ( is_int( $appointment_id ) ) {
			return 'id:' . $appointment_id;
		}
		$row = AppointEase_RT_Rest_Hooks::find_appointment( $appointment_id );
		return null !== $row ? 'id:' . (int) $row['id'] : 'ref:' . $appointment_id;
	}

	/**
	 * Shutdown: finish the HTTP response first, then try this request's events once.
	 */
	public function flush_queued(): void {
		if ( array() === $this->queued ) {
			return;
		}
		if ( function_exists( 'fastcgi_finish_request' ) ) {
			fastcgi_finish_request();
		} elseif ( function_exists( 'litespeed_finish_request' ) ) {
			litespeed_finish_request();
		}
		$ids          = $this->queued;
		$this->queued = array();
		$this->outbox()->flush( $ids, count( $ids ), 5.0 );
	}

	/**
	 * WP-Cron: retry what is due.
	 */
	public function cron_flush(): void {
		if ( ! $this->config->can_deliver() ) {
			return;
		}
		$this->outbox()->flush( null, 100, 25.0 );
	}

	/**
	 * Sends a test.ping right now (not through the outbox).
	 *
	 * @return array{ok: bool, status: int, error: string}
	 */
	public function send_test_ping(): array {
		$body = wp_json_encode(
			array(
				'type'      => 'test.ping',
				'timestamp' => gmdate( 'Y-m-d\TH:i:s\Z' ),
				'data'      => new stdClass(),
			),
			JSON_UNESCAPED_SLASHES
		);
		$result = $this->client()->deliver( AppointEase_RT_Outbox::new_webhook_id(), (string) $body );
		if ( ! $result['ok'] ) {
			AppointEase_RT_Outbox::record_last_error( '', 'test.ping', $result['status'], $result['error'], false );
		}
		return $result;
	}
}
