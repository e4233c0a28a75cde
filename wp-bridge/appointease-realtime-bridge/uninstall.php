<?php
/**
 * Uninstall: removes only what this plugin created (its options, its
 * transients, its cron hook, its outbox table and its capability), on every
 * site of a network. AppointEase's own tables are never touched.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
	exit;
}

/**
 * Removes the bridge's data from the current site.
 */
function appointease_rt_uninstall_site(): void {
	global $wpdb;
	delete_option( 'appointease_rt_settings' );
	delete_option( 'appointease_rt_last_error' );
	delete_option( 'appointease_rt_db_version' );
	delete_option( 'appointease_rt_refused_bookings' );
	wp_clear_scheduled_hook( 'appointease_rt_flush_outbox' );
	$patterns = array();
	foreach ( array( 'appointease_rt_test_', 'appointease_rt_generated_' ) as $transient ) {
		$patterns[] = $wpdb->esc_like( '_transient_' . $transient ) . '%';
		$patterns[] = $wpdb->esc_like( '_transient_timeout_' . $transient ) . '%';
	}
	$wpdb->query( // phpcs:ignore WordPress.DB.DirectDatabaseQuery
		$wpdb->prepare(
			"DELETE FROM {$wpdb->options} WHERE option_name LIKE %s OR option_name LIKE %s OR option_name LIKE %s OR option_name LIKE %s",
			$patterns
		)
	);
	$wpdb->query( "DROP TABLE IF EXISTS {$wpdb->prefix}appointease_rt_outbox" ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery

	// The staff capability: from every role (a site may have given it to more than administrators)...
	$capability = 'appointease_rt_staff';
	$roles      = wp_roles();
	foreach ( array_keys( $roles->role_objects ) as $role ) {
		$roles->remove_cap( $role, $capability );
	}
	// ...and from users who were given it one by one.
	foreach ( get_users( array( 'capability' => $capability ) ) as $user ) {
		$user->remove_cap( $capability );
	}
}

if ( is_multisite() ) {
	// get_sites() returns 100 sites unless told otherwise: go through all of them, page by page.
	$appointease_rt_offset = 0;
	do {
		$appointease_rt_sites = get_sites(
			array(
				'fields'                 => 'ids',
				'number'                 => 100,
				'offset'                 => $appointease_rt_offset,
				'orderby'                => 'id',
				'order'                  => 'ASC',
				'update_site_meta_cache' => false,
			)
		);
		foreach ( $appointease_rt_sites as $appointease_rt_site_id ) {
			switch_to_blog( (int) $appointease_rt_site_id );
			appointease_rt_uninstall_site();
			restore_current_blog();
		}
		$appointease_rt_offset += 100;
	} while ( 100 === count( $appointease_rt_sites ) );
} else {
	appointease_rt_uninstall_site();
}
