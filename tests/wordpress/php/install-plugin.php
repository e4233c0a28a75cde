<?php
/**
 * Installs the bridge into the throw-away test WordPress from its release zip,
 * the way Plugins > Add New > Upload Plugin does: WordPress's own
 * Plugin_Upgrader::install() with a silent skin (FS_METHOD is 'direct' in the
 * test wp-config.php), then activate_plugin().
 *
 * Usage: php install-plugin.php <docroot> <base_url> <zip>
 * Prints one JSON line: {"activated": true, "plugin": "<dir>/<file>.php", "version": ..., "messages": [...]}.
 */

$docroot = $argv[1];
$parts   = parse_url( $argv[2] );
$zip     = $argv[3];

$_SERVER['HTTP_HOST']   = $parts['host'] . ( isset( $parts['port'] ) ? ':' . $parts['port'] : '' );
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['SERVER_PORT'] = (string) ( $parts['port'] ?? 80 );
$_SERVER['REQUEST_URI'] = '/wp-admin/update.php?action=upload-plugin';

require $docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/admin.php';
require_once ABSPATH . 'wp-admin/includes/class-wp-upgrader.php';

wp_set_current_user( 1 );

if ( ! is_file( $zip ) ) {
	fwrite( STDERR, "no zip at $zip" . PHP_EOL );
	exit( 1 );
}

// Not part of installing: WordPress asks WordPress.org for updates afterwards, which the
// test site blocks (WP_HTTP_BLOCK_EXTERNAL), and logs a warning for each.
remove_action( 'upgrader_process_complete', 'wp_version_check' );
remove_action( 'upgrader_process_complete', 'wp_update_plugins' );
remove_action( 'upgrader_process_complete', 'wp_update_themes' );

$skin     = new WP_Ajax_Upgrader_Skin();
$upgrader = new Plugin_Upgrader( $skin );
$result   = $upgrader->install( $zip );
$messages = array_values( array_map( 'strval', $skin->get_upgrade_messages() ) );
if ( true !== $result ) {
	$error = is_wp_error( $result ) ? $result->get_error_message() : implode( ' ', $skin->get_error_messages() );
	fwrite( STDERR, 'Plugin_Upgrader::install failed: ' . $error . PHP_EOL . implode( PHP_EOL, $messages ) . PHP_EOL );
	exit( 1 );
}
$plugin = $upgrader->plugin_info();
if ( ! $plugin ) {
	fwrite( STDERR, 'the upgrader installed no plugin' . PHP_EOL );
	exit( 1 );
}

$activated = activate_plugin( $plugin );
if ( is_wp_error( $activated ) ) {
	fwrite( STDERR, 'plugin activation failed: ' . $activated->get_error_message() . PHP_EOL );
	exit( 1 );
}
$data = get_plugin_data( WP_PLUGIN_DIR . '/' . $plugin, false, false );
echo json_encode(
	array(
		'activated' => is_plugin_active( $plugin ),
		'plugin'    => $plugin,
		'version'   => $data['Version'],
		'directory' => WP_PLUGIN_DIR . '/' . dirname( $plugin ),
		'messages'  => $messages,
	)
), "\n";
