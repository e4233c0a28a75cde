<?php
/**
 * HTTP calls to the daemon: signed hook POSTs and the readiness probe.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Talks HTTP to the daemon with the WordPress HTTP API.
 */
final class AppointEase_RT_Client {

	/** @var AppointEase_RT_Config */
	private $config;

	/** @var float Seconds before a hook POST gives up. */
	private $timeout;

	/**
	 * @param AppointEase_RT_Config $config  Configuration.
	 * @param float                 $timeout Request timeout in seconds.
	 */
	public function __construct( AppointEase_RT_Config $config, float $timeout = 2.0 ) {
		$this->config  = $config;
		$this->timeout = $timeout;
	}

	/**
	 * Sends one signed hook. The timestamp header is taken now (send time).
	 *
	 * @param string $webhook_id Same id on every retry of the event.
	 * @param string $body       JSON body, sent byte for byte as signed.
	 * @return array{ok: bool, status: int, error: string}
	 */
	public function deliver( string $webhook_id, string $body ): array {
		if ( ! $this->config->can_deliver() ) {
			return array(
				'ok'     => false,
				'status' => 0,
				'error'  => implode( ' ', $this->config->delivery_problems() ),
			);
		}
		$signer  = new AppointEase_RT_Signer( $this->config->secret );
		$headers = $signer->headers( $webhook_id, time(), $body );

		$headers['Content-Type'] = 'application/json';
		$response                = wp_remote_post(
			$this->config->hook_url(),
			array(
				'timeout'     => $this->timeout,
				'redirection' => 0,
				'blocking'    => true,
				'headers'     => $headers,
				'body'        => $body,
				'user-agent'  => 'AppointEase-Realtime-Bridge/' . APPOINTEASE_RT_VERSION . '; ' . home_url( '/' ),
			)
		);
		if ( is_wp_error( $response ) ) {
			return array(
				'ok'     => false,
				'status' => 0,
				'error'  => $response->get_error_message(),
			);
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		if ( $status >= 200 && $status < 300 ) {
			return array(
				'ok'     => true,
				'status' => $status,
				'error'  => '',
			);
		}
		$detail  = '';
		$decoded = json_decode( (string) wp_remote_retrieve_body( $response ), true );
		if ( is_array( $decoded ) ) {
			$detail = trim( (string) ( $decoded['code'] ?? '' ) . ' ' . (string) ( $decoded['error'] ?? '' ) );
		}
		return array(
			'ok'     => false,
			'status' => $status,
			/* translators: 1: HTTP status code, 2: error detail from the daemon. */
			'error'  => trim( sprintf( __( 'HTTP %1$d %2$s', 'appointease-realtime-bridge' ), $status, $detail ) ),
		);
	}

	/**
	 * GET /readyz on the daemon.
	 *
	 * @return array{ok: bool, status: int, body: string, error: string}
	 */
	public function readyz(): array {
		if ( '' === $this->config->url ) {
			return array(
				'ok'     => false,
				'status' => 0,
				'body'   => '',
				'error'  => __( 'The daemon URL (APPOINTEASE_RT_URL) is not set.', 'appointease-realtime-bridge' ),
			);
		}
		$response = wp_remote_get(
			$this->config->readyz_url(),
			array(
				'timeout'     => $this->timeout,
				'redirection' => 0,
			)
		);
		if ( is_wp_error( $response ) ) {
			return array(
				'ok'     => false,
				'status' => 0,
				'body'   => '',
				'error'  => $response->get_error_message(),
			);
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		return array(
			'ok'     => $status >= 200 && $status < 300,
			'status' => $status,
			'body'   => substr( (string) wp_remote_retrieve_body( $response ), 0, 2000 ),
			'error'  => '',
		);
	}
}
