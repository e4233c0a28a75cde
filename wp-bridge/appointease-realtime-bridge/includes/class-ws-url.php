<?php
/**
 * Points the booking block at the daemon: overrides window.bookingAPI.wsUrl.
 *
 * AppointEase prints `var bookingAPI = {root, nonce, wsUrl}` with
 * wp_localize_script() on a script handle we do not know. Right before
 * scripts are printed (head and footer, front end and admin), every
 * registered script whose localized data defines bookingAPI gets an inline
 * "before" script. WordPress prints a handle's localized data first, then its
 * "before" inline scripts, then the script itself, so the override always
 * runs after AppointEase's assignment and before the block reads it.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * wsUrl override.
 */
final class AppointEase_RT_Ws_Url {

	/** @var AppointEase_RT_Config */
	private $config;

	/** @var array<string, true> Handles already patched. */
	private $patched = array();

	/**
	 * @param AppointEase_RT_Config $config Configuration.
	 */
	public function __construct( AppointEase_RT_Config $config ) {
		$this->config = $config;
	}

	/**
	 * Registers the hooks (only when a usable public URL is configured).
	 */
	public function register(): void {
		foreach ( array( 'wp_print_scripts', 'wp_print_footer_scripts', 'admin_print_scripts', 'admin_print_footer_scripts' ) as $hook ) {
			add_action( $hook, array( $this, 'patch' ), 5 );
		}
	}

	/**
	 * The URL handed to browsers. Filter "appointease_rt_ws_url" can change it
	 * (e.g. to put a per-visitor token in the path: the block appends ?email=).
	 */
	public function url(): string {
		$url = '';
		if ( array() === $this->config->public_url_problems() ) {
			$url = $this->config->public_url;
		}
		return (string) apply_filters( 'appointease_rt_ws_url', $url );
	}

	/**
	 * Adds the override to every handle that localizes bookingAPI.
	 */
	public function patch(): void {
		$url = $this->url();
		if ( '' === $url ) {
			return;
		}
		$scripts = wp_scripts();
		foreach ( $scripts->registered as $handle => $dependency ) {
			if ( isset( $this->patched[ $handle ] ) ) {
				continue;
			}
			$data = $dependency->extra['data'] ?? '';
			if ( ! is_string( $data ) || ! preg_match( '/\bbookingAPI\s*=/', $data ) ) {
				continue;
			}
			$this->patched[ $handle ] = true;
			wp_add_inline_script(
				$handle,
				'if (typeof window.bookingAPI === "object" && window.bookingAPI !== null) { window.bookingAPI.wsUrl = ' . wp_json_encode( $url, JSON_UNESCAPED_SLASHES ) . '; }',
				'before'
			);
		}
	}
}
