<?php
/**
 * PHPUnit bootstrap for the bridge's unit tests.
 *
 * Loads the plugin classes without WordPress: a few WordPress functions are
 * stubbed below and $wpdb is a minimal stand-in (Test_WPDB) that runs real SQL
 * through mysqli against a throw-away MariaDB/MySQL database named
 * aert_php_<random>, created here and dropped at the end of the run.
 *
 * Connection: TEST_MYSQL_HOST or MYSQL_HOST (127.0.0.1), MYSQL_PORT (3306), MYSQL_USER (root),
 * MYSQL_PASSWORD (''). Without a reachable server the database tests are
 * skipped, unless CI=true, where the run fails.
 */

declare(strict_types=1);

define( 'ABSPATH', __DIR__ . '/' );
define( 'APPOINTEASE_RT_STANDALONE', true );
define( 'APPOINTEASE_RT_VERSION', 'test' );
define( 'OBJECT', 'OBJECT' );
define( 'ARRAY_A', 'ARRAY_A' );
define( 'MINUTE_IN_SECONDS', 60 );
define( 'HOUR_IN_SECONDS', 3600 );

// error_log() goes to a file the tests can read (and not to the test output).
$GLOBALS['aert_error_log'] = tempnam( sys_get_temp_dir(), 'aert-php-log-' );
ini_set( 'error_log', $GLOBALS['aert_error_log'] );

/* ---- WordPress function stubs ---------------------------------------- */

$GLOBALS['aert_options'] = array();

function get_option( $name, $default = false ) {
	return array_key_exists( $name, $GLOBALS['aert_options'] ) ? $GLOBALS['aert_options'][ $name ] : $default;
}
function update_option( $name, $value, $autoload = null ) {
	$GLOBALS['aert_options'][ $name ] = $value;
	return true;
}
function delete_option( $name ) {
	unset( $GLOBALS['aert_options'][ $name ] );
	return true;
}
function wp_json_encode( $data, $options = 0, $depth = 512 ) {
	return json_encode( $data, $options, $depth );
}
function __( $text, $domain = 'default' ) {
	return $text;
}
/** Filters a test added: hook => list of callables (see aert_add_filter()). */
$GLOBALS['aert_filters'] = array();

function apply_filters( $hook, $value, ...$args ) {
	foreach ( $GLOBALS['aert_filters'][ $hook ] ?? array() as $callback ) {
		$value = $callback( $value, ...$args );
	}
	return $value;
}
/**
 * Adds a filter for the current test; aert_reset_filters() removes them all.
 */
function aert_add_filter( string $hook, callable $callback ): void {
	$GLOBALS['aert_filters'][ $hook ][] = $callback;
}
function aert_reset_filters(): void {
	$GLOBALS['aert_filters'] = array();
}
function _n( $single, $plural, $number, $domain = 'default' ) {
	return 1 === (int) $number ? $single : $plural;
}
function is_wp_error( $thing ) {
	return $thing instanceof WP_Error;
}

/**
 * The part of WP_Error the bridge uses.
 */
class WP_Error {
	public $code;
	public $message;
	public $data;

	public function __construct( $code = '', $message = '', $data = '' ) {
		$this->code    = $code;
		$this->message = $message;
		$this->data    = $data;
	}
	public function get_error_code() {
		return $this->code;
	}
	public function get_error_message() {
		return $this->message;
	}
	public function get_error_data() {
		return $this->data;
	}
}

/**
 * The part of WP_REST_Request the bridge uses: method, route, merged parameters.
 */
class WP_REST_Request {
	private $method;
	private $route;
	private $params;

	public function __construct( string $method, string $route, array $params = array() ) {
		$this->method = $method;
		$this->route  = $route;
		$this->params = $params;
	}
	public function get_method() {
		return $this->method;
	}
	public function get_route() {
		return $this->route;
	}
	public function get_param( $key ) {
		return $this->params[ $key ] ?? null;
	}
}
$GLOBALS['aert_settings_errors'] = array();

function add_settings_error( $setting, $code, $message, $type = 'error' ) {
	$GLOBALS['aert_settings_errors'][] = array(
		'setting' => $setting,
		'code'    => $code,
		'message' => $message,
		'type'    => $type,
	);
}
function get_settings_errors( $setting = '', $sanitize = false ) {
	return array_values(
		array_filter(
			$GLOBALS['aert_settings_errors'],
			static function ( $error ) use ( $setting ) {
				return '' === $setting || $error['setting'] === $setting;
			}
		)
	);
}
function dbDelta( $queries ) {
	global $wpdb;
	foreach ( (array) $queries as $sql ) {
		$wpdb->query( preg_replace( '/^\s*CREATE TABLE\s+/i', 'CREATE TABLE IF NOT EXISTS ', $sql ) );
	}
	return array();
}

/* ---- $wpdb stand-in ----------------------------------------------------- */

/**
 * The part of wpdb the bridge uses, over mysqli, with wpdb's semantics.
 */
final class Test_WPDB {
	public $prefix = 'wp_';
	public $last_error = '';
	public $insert_id = 0;
	public $rows_affected = 0;
	public $suppress = false;
	/** @var mysqli */
	public $mysqli;

	public function __construct( mysqli $mysqli ) {
		$this->mysqli = $mysqli;
	}

	public function get_charset_collate() {
		return 'DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci';
	}

	public function suppress_errors( $suppress = true ) {
		$old            = $this->suppress;
		$this->suppress = (bool) $suppress;
		return $old;
	}

	public function prepare( $query, ...$args ) {
		if ( 1 === count( $args ) && is_array( $args[0] ) ) {
			$args = $args[0];
		}
		$i = 0;
		return preg_replace_callback(
			'/%(%|s|d|f)/',
			function ( $m ) use ( &$i, $args ) {
				if ( '%' === $m[1] ) {
					return '%';
				}
				$value = $args[ $i++ ];
				switch ( $m[1] ) {
					case 'd':
						return (string) (int) $value;
					case 'f':
						return (string) (float) $value;
					default:
						return "'" . $this->mysqli->real_escape_string( (string) $value ) . "'";
				}
			},
			$query
		);
	}

	public function query( $sql ) {
		$this->last_error = '';
		try {
			$result = $this->mysqli->query( $sql );
		} catch ( mysqli_sql_exception $e ) {
			$this->last_error = $e->getMessage();
			return false;
		}
		if ( $result instanceof mysqli_result ) {
			$rows = array();
			while ( $row = $result->fetch_assoc() ) {
				$rows[] = $row;
			}
			$result->free();
			$this->last_result = $rows;
			return count( $rows );
		}
		$this->insert_id     = (int) $this->mysqli->insert_id;
		$this->rows_affected = (int) $this->mysqli->affected_rows;
		return $this->rows_affected;
	}

	public $last_result = array();

	public function get_results( $sql, $output = OBJECT ) {
		if ( false === $this->query( $sql ) ) {
			return null;
		}
		return ARRAY_A === $output ? $this->last_result : array_map( fn( $r ) => (object) $r, $this->last_result );
	}

	public function get_row( $sql, $output = OBJECT ) {
		$rows = $this->get_results( $sql, $output );
		return $rows ? $rows[0] : null;
	}

	public function get_var( $sql ) {
		if ( false === $this->query( $sql ) || ! $this->last_result ) {
			return null;
		}
		$first = reset( $this->last_result );
		return reset( $first );
	}

	private function build( array $data, $formats ): array {
		$formats = (array) $formats;
		$parts   = array();
		$i       = 0;
		foreach ( $data as $column => $value ) {
			$format            = $formats[ $i++ ] ?? '%s';
			$parts[ $column ]  = null === $value ? 'NULL' : $this->prepare( $format, $value );
		}
		return $parts;
	}

	public function insert( $table, $data, $formats = null ) {
		$parts = $this->build( $data, $formats );
		$sql   = "INSERT INTO `$table` (`" . implode( '`,`', array_keys( $parts ) ) . '`) VALUES (' . implode( ',', $parts ) . ')';
		return $this->query( $sql );
	}

	public function delete( $table, $where, $formats = null ) {
		$parts = $this->build( $where, $formats );
		$cond  = array();
		foreach ( $parts as $column => $value ) {
			$cond[] = "`$column` = $value";
		}
		return $this->query( "DELETE FROM `$table` WHERE " . implode( ' AND ', $cond ) );
	}
}

/* ---- throw-away database ------------------------------------------------ */

$GLOBALS['aert_db_available'] = false;
$GLOBALS['aert_db_name']      = 'aert_php_' . bin2hex( random_bytes( 5 ) );

mysqli_report( MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT );
try {
	$aert_mysqli = new mysqli(
		getenv( 'TEST_MYSQL_HOST' ) ?: ( getenv( 'MYSQL_HOST' ) ?: '127.0.0.1' ),
		getenv( 'MYSQL_USER' ) ?: 'root',
		getenv( 'MYSQL_PASSWORD' ) ?: '',
		'',
		(int) ( getenv( 'MYSQL_PORT' ) ?: 3306 )
	);
	$aert_mysqli->set_charset( 'utf8mb4' );
	$aert_mysqli->query( 'CREATE DATABASE `' . $GLOBALS['aert_db_name'] . '` CHARACTER SET utf8mb4' );
	$aert_mysqli->select_db( $GLOBALS['aert_db_name'] );
	$GLOBALS['wpdb']              = new Test_WPDB( $aert_mysqli );
	$GLOBALS['aert_db_available'] = true;
	register_shutdown_function(
		static function () use ( $aert_mysqli ): void {
			$aert_mysqli->query( 'DROP DATABASE IF EXISTS `' . $GLOBALS['aert_db_name'] . '`' );
			@unlink( $GLOBALS['aert_error_log'] );
		}
	);
} catch ( mysqli_sql_exception $e ) {
	if ( 'true' === strtolower( (string) getenv( 'CI' ) ) ) {
		fwrite( STDERR, 'MariaDB/MySQL is required when CI=true: ' . $e->getMessage() . PHP_EOL );
		exit( 1 );
	}
	$GLOBALS['aert_db_skip_reason'] = 'no MariaDB/MySQL server: ' . $e->getMessage();
}

/**
 * Skips the calling test when there is no database.
 */
function aert_require_db( \PHPUnit\Framework\TestCase $test ): void {
	if ( ! $GLOBALS['aert_db_available'] ) {
		$test->markTestSkipped( $GLOBALS['aert_db_skip_reason'] );
	}
}

/**
 * Skips the calling test when a PHP extension it needs is missing, except with CI=true,
 * where the test fails instead: CI must install what its tests need.
 *
 * On Debian 12 there is nothing to install for pcntl: it is compiled into php8.2-cli itself
 * (there is no php8.2-pcntl package), and posix comes with php8.2-common. It is missing only
 * under another SAPI (php-cgi, php-fpm, a web server module), in a PHP built without it (the
 * official Docker images need docker-php-ext-install pcntl), or when php.ini lists its
 * functions in disable_functions.
 *
 * @param string ...$extensions Extension names, as extension_loaded() knows them.
 */
function aert_require_extensions( \PHPUnit\Framework\TestCase $test, string ...$extensions ): void {
	$missing = array_values( array_filter( $extensions, static fn( $e ) => ! extension_loaded( $e ) ) );
	$disabled = array_filter( array_map( 'trim', explode( ',', (string) ini_get( 'disable_functions' ) ) ) );
	foreach ( $disabled as $function ) {
		foreach ( $extensions as $extension ) {
			if ( 0 === strpos( $function, $extension . '_' ) ) {
				$missing[] = "$extension ($function in disable_functions)";
			}
		}
	}
	if ( ! $missing ) {
		return;
	}
	$message = 'PHP extension(s) missing: ' . implode( ', ', array_unique( $missing ) ) . ' (SAPI ' . PHP_SAPI . ', ' . PHP_BINARY . ')';
	if ( 'true' === strtolower( (string) getenv( 'CI' ) ) ) {
		$test->fail( $message . '; required when CI=true' );
	}
	$test->markTestSkipped( $message );
}

/**
 * Lines written with error_log() since the last call.
 *
 * @return string[]
 */
function aert_take_error_log(): array {
	$text = (string) file_get_contents( $GLOBALS['aert_error_log'] );
	file_put_contents( $GLOBALS['aert_error_log'], '' );
	return array_values( array_filter( explode( "\n", $text ) ) );
}

$aert_plugin = dirname( __DIR__, 2 ) . '/wp-bridge/appointease-realtime-bridge/includes/';
require_once $aert_plugin . 'class-signer.php';
require_once $aert_plugin . 'class-jwt.php';
require_once $aert_plugin . 'class-config.php';
require_once $aert_plugin . 'class-outbox.php';
require_once $aert_plugin . 'class-locks.php';
require_once $aert_plugin . 'class-hold-cookie.php';
require_once $aert_plugin . 'class-rest-hooks.php';
require_once $aert_plugin . 'class-hold-guard.php';
require_once $aert_plugin . 'class-plugin.php';
require_once $aert_plugin . 'class-settings-page.php';

// The base class of the tests on the lock table (not itself a test: no Test.php suffix).
require_once __DIR__ . '/SlotLocksTestCase.php';
