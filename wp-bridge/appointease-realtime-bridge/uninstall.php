<?php
/**
 * Uninstall: removes only what this plugin created (its options, its
 * transients, its cron hook and its outbox table). AppointEase's own tables
 * are never touched.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
	exit;
}

global $wpdb;

/**
 * Removes the bridge's data from the current site.
 */
function appointease_rt_uninstall_site(): void {
	global $wpdb;
	delete_option( 'appointease_rt_last_error' );
	delete_option( 'appointease_rt_db_version' );
	wp_clear_scheduled_hook( 'appointease_rt_flush_outbox' );
	$wpdb->query( // phpcs:ignore WordPress.DB.DirectDatabaseQuery
		$wpdb->prepare(
			"DELETE FROM {$wpdb->options} WHERE option_name LIKE %s OR option_name LIKE %s",
			$wpdb->esc_like( '_transient_appointease_rt_test_' ) . '%',
			$wpdb->esc_like( '_transient_timeout_appointease_rt_test_' ) . '%'
		)
	);
	$wpdb->query( "DROP TABLE IF EXISTS {$wpdb->prefix}appointease_rt_outbox" ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
}

if ( is_multisite() ) {
	foreach ( get_sites( array( 'fields' => 'ids' ) ) as $appointease_rt_site_id ) {
		switch_to_blog( $appointease_rt_site_id );
		appointease_rt_uninstall_site();
		restore_current_blog();
	}
} else {
	appointease_rt_uninstall_site();
}
