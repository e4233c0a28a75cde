<?php
/**
 * Installs the throw-away test WordPress without WP-CLI.
 *
 * Usage: php install.php <docroot> <base_url> [--multisite]
 * Runs wp_install(), switches to the test theme (theme/aert-test-theme, copied
 * by the harness), creates AppointEase's two tables exactly as the plugin does
 * (shared/booking-block.md; the statements of daemon/appointease_realtime/store/
 * schema.mysql.sql, found from this file's place in the repository, not from the
 * docroot) and, with --multisite, the network tables of a sub-directory network
 * (wp-config.php gets MULTISITE afterwards). The bridge is installed afterwards
 * from its zip (install-plugin.php).
 * Prints {"installed": true} as its last line.
 */

$docroot        = $argv[1];
$aert_schema    = dirname( __DIR__, 3 ) . '/daemon/appointease_realtime/store/schema.mysql.sql';
$aert_sql       = is_readable( $aert_schema ) ? file_get_contents( $aert_schema ) : false;
if ( false === $aert_sql ) {
	fwrite( STDERR, "cannot read the plugin's schema: $aert_schema" . PHP_EOL );
	exit( 1 );
}
$aert_multisite = in_array( '--multisite', $argv, true );
$parts          = parse_url( $argv[2] );

$_SERVER['HTTP_HOST']   = $parts['host'] . ( isset( $parts['port'] ) ? ':' . $parts['port'] : '' );
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['SERVER_PORT'] = (string) ( $parts['port'] ?? 80 );
$_SERVER['REQUEST_URI'] = '/';

define( 'WP_INSTALLING', true );
require $docroot . '/wp-load.php';

// No e-mail from the install (pluggable; must exist before upgrade.php is loaded).
function wp_new_blog_notification( $blog_title, $blog_url, $user_id, $password ) {}

require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

$result = wp_install( 'AppointEase Realtime test site', 'admin', 'admin@example.org', false, '', 'admin-password' );
if ( is_wp_error( $result ) ) {
	fwrite( STDERR, 'wp_install failed: ' . $result->get_error_message() . PHP_EOL );
	exit( 1 );
}

global $wpdb;
// Its "--" lines dropped, split on ";", {prefix} replaced: CREATE TABLE IF NOT EXISTS ... DEFAULT
// CHARSET=utf8mb4 in the utf8mb4 database the harness has just created.
$tables = array_filter( array_map( 'trim', explode( ';', preg_replace( '/^\s*--.*$/m', '', $aert_sql ) ) ) );
$tables = str_replace( '{prefix}', $wpdb->prefix, $tables );
if ( 2 !== count( $tables ) ) {
	fwrite( STDERR, 'expected two CREATE TABLE statements in ' . $aert_schema . PHP_EOL );
	exit( 1 );
}
foreach ( $tables as $sql ) {
	if ( false === $wpdb->query( $sql ) ) {
		fwrite( STDERR, 'table creation failed: ' . $wpdb->last_error . PHP_EOL );
		exit( 1 );
	}
}

// The test theme, so the front page prints wp_head()/wp_footer() (Debian ships no theme
// unless its Recommends are installed).
$theme = wp_get_theme( 'aert-test-theme' );
if ( ! $theme->exists() || $theme->errors() ) {
	fwrite( STDERR, 'the test theme is missing: ' . implode( ' ', (array) $theme->errors() ) . PHP_EOL );
	exit( 1 );
}
switch_theme( 'aert-test-theme' );

if ( $aert_multisite ) {
	require_once ABSPATH . 'wp-admin/includes/network.php';
	// As wp-admin/network.php does: a single site's $wpdb has no names for the network tables yet.
	foreach ( $wpdb->tables( 'ms_global' ) as $table => $prefixed_table ) {
		$wpdb->$table = $prefixed_table;
	}
	install_network();
	$network = populate_network( 1, $_SERVER['HTTP_HOST'], 'admin@example.org', 'AppointEase Realtime test network', '/', false );
	if ( is_wp_error( $network ) ) {
		fwrite( STDERR, 'populate_network failed: ' . $network->get_error_message() . PHP_EOL );
		exit( 1 );
	}
}
echo json_encode( array( 'installed' => true, 'theme' => get_stylesheet() ) ), "\n";
