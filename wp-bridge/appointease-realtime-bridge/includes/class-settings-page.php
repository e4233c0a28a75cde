<?php
/**
 * Settings → AppointEase Realtime: status of the daemon and of the outbox, and a test button.
 *
 * @package AppointEase_Realtime_Bridge
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The admin page.
 */
final class AppointEase_RT_Settings_Page {

	const SLUG        = 'appointease-realtime';
	const TEST_ACTION = 'appointease_rt_test_hook';

	/** @var AppointEase_RT_Plugin */
	private $plugin;

	/**
	 * @param AppointEase_RT_Plugin $plugin The plugin.
	 */
	public function __construct( AppointEase_RT_Plugin $plugin ) {
		$this->plugin = $plugin;
	}

	/**
	 * Registers the admin hooks.
	 */
	public function register(): void {
		add_action( 'admin_menu', array( $this, 'add_page' ) );
		add_action( 'admin_post_' . self::TEST_ACTION, array( $this, 'handle_test' ) );
	}

	/**
	 * Adds the page under Settings.
	 */
	public function add_page(): void {
		add_options_page(
			__( 'AppointEase Realtime', 'appointease-realtime-bridge' ),
			__( 'AppointEase Realtime', 'appointease-realtime-bridge' ),
			'manage_options',
			self::SLUG,
			array( $this, 'render' )
		);
	}

	/**
	 * The transient key holding the current user's last test result.
	 */
	private static function result_key(): string {
		return 'appointease_rt_test_' . get_current_user_id();
	}

	/**
	 * admin-post handler of the "Send test hook" button.
	 */
	public function handle_test(): void {
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_die( esc_html__( 'You are not allowed to do this.', 'appointease-realtime-bridge' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( self::TEST_ACTION );

		$result = $this->plugin->send_test_ping();
		set_transient( self::result_key(), $result, 5 * MINUTE_IN_SECONDS );
		wp_safe_redirect( add_query_arg( array( 'page' => self::SLUG ), admin_url( 'options-general.php' ) ) );
		exit;
	}

	/**
	 * Renders the page.
	 */
	public function render(): void {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		$config   = $this->plugin->config();
		$problems = array_merge( $config->delivery_problems(), $config->public_url_problems(), $config->token_problems() );
		$outbox   = $this->plugin->outbox();
		$ready    = $this->plugin->client()->readyz();
		$last     = AppointEase_RT_Outbox::last_error();
		$test     = get_transient( self::result_key() );
		if ( false !== $test ) {
			delete_transient( self::result_key() );
		}
		?>
		<div class="wrap">
			<h1><?php esc_html_e( 'AppointEase Realtime', 'appointease-realtime-bridge' ); ?></h1>

			<?php foreach ( $problems as $problem ) : ?>
				<div class="notice notice-warning"><p><?php echo esc_html( $problem ); ?></p></div>
			<?php endforeach; ?>

			<?php if ( is_array( $test ) ) : ?>
				<div class="notice <?php echo $test['ok'] ? 'notice-success' : 'notice-error'; ?>">
					<p>
						<?php
						if ( $test['ok'] ) {
							/* translators: %d: HTTP status code. */
							echo esc_html( sprintf( __( 'Test hook delivered (HTTP %d).', 'appointease-realtime-bridge' ), (int) $test['status'] ) );
						} else {
							/* translators: %s: error message. */
							echo esc_html( sprintf( __( 'Test hook failed: %s', 'appointease-realtime-bridge' ), (string) $test['error'] ) );
						}
						?>
					</p>
				</div>
			<?php endif; ?>

			<table class="form-table" role="presentation">
				<tr>
					<th scope="row"><?php esc_html_e( 'Daemon URL (APPOINTEASE_RT_URL)', 'appointease-realtime-bridge' ); ?></th>
					<td><code><?php echo esc_html( '' !== $config->url ? $config->url : '—' ); ?></code></td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Browser URL (APPOINTEASE_RT_PUBLIC_URL)', 'appointease-realtime-bridge' ); ?></th>
					<td><code><?php echo esc_html( '' !== $config->public_url ? $config->public_url : '—' ); ?></code></td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Connection tokens (APPOINTEASE_RT_TOKEN_SECRET)', 'appointease-realtime-bridge' ); ?></th>
					<td>
						<?php if ( $config->can_issue_tokens() ) : ?>
							<?php /* translators: %s: REST route. */ ?>
							<?php echo esc_html( sprintf( __( 'Issued to logged-in users and customer sessions; refresh at %s', 'appointease-realtime-bridge' ), rest_url( AppointEase_RT_Token::REST_NAMESPACE . AppointEase_RT_Token::REST_ROUTE ) ) ); ?>
						<?php else : ?>
							<?php esc_html_e( 'Not issued', 'appointease-realtime-bridge' ); ?>
						<?php endif; ?>
					</td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Daemon readiness (GET /readyz)', 'appointease-realtime-bridge' ); ?></th>
					<td>
						<?php if ( $ready['ok'] ) : ?>
							<strong><?php esc_html_e( 'Ready', 'appointease-realtime-bridge' ); ?></strong>
						<?php else : ?>
							<strong><?php esc_html_e( 'Not ready', 'appointease-realtime-bridge' ); ?></strong>
						<?php endif; ?>
						<?php if ( $ready['status'] ) : ?>
							<?php /* translators: %d: HTTP status code. */ ?>
							(<?php echo esc_html( sprintf( __( 'HTTP %d', 'appointease-realtime-bridge' ), (int) $ready['status'] ) ); ?>)
						<?php endif; ?>
						<?php if ( '' !== $ready['error'] ) : ?>
							<p><?php echo esc_html( $ready['error'] ); ?></p>
						<?php endif; ?>
						<?php if ( '' !== $ready['body'] ) : ?>
							<pre style="white-space:pre-wrap;max-width:60em"><?php echo esc_html( $ready['body'] ); ?></pre>
						<?php endif; ?>
					</td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Outbox', 'appointease-realtime-bridge' ); ?></th>
					<td>
						<?php
						echo esc_html(
							sprintf(
								/* translators: 1: number of queued events, 2: number due now. */
								__( '%1$d event(s) queued, %2$d due now.', 'appointease-realtime-bridge' ),
								$outbox->count(),
								$outbox->count_due()
							)
						);
						?>
					</td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Last delivery error', 'appointease-realtime-bridge' ); ?></th>
					<td>
						<?php if ( null === $last ) : ?>
							<?php esc_html_e( 'None.', 'appointease-realtime-bridge' ); ?>
						<?php else : ?>
							<?php
							echo esc_html(
								sprintf(
									/* translators: 1: date, 2: event type, 3: webhook id, 4: error message. */
									__( '%1$s — %2$s %3$s: %4$s', 'appointease-realtime-bridge' ),
									wp_date( 'Y-m-d H:i:s', (int) $last['time'] ),
									(string) $last['type'],
									(string) $last['webhook_id'],
									(string) $last['error']
								)
							);
							if ( ! empty( $last['dropped'] ) ) {
								echo ' <strong>' . esc_html__( '(dropped after the last attempt)', 'appointease-realtime-bridge' ) . '</strong>';
							}
							?>
						<?php endif; ?>
					</td>
				</tr>
			</table>

			<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
				<input type="hidden" name="action" value="<?php echo esc_attr( self::TEST_ACTION ); ?>" />
				<?php wp_nonce_field( self::TEST_ACTION ); ?>
				<?php submit_button( __( 'Send test hook', 'appointease-realtime-bridge' ), 'secondary', 'submit', false, $config->can_deliver() ? array() : array( 'disabled' => 'disabled' ) ); ?>
			</form>
		</div>
		<?php
	}
}
