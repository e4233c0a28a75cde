<?php
/**
 * Settings → AppointEase Realtime: the daemon's URLs and secrets (stored as
 * an option; wp-config.php constants win), a "Generate secrets" button, the
 * status of the daemon and of the outbox, and a test button.
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

	const SLUG            = 'appointease-realtime';
	const GROUP           = 'appointease_rt';
	const CAPABILITY      = 'manage_options';
	const TEST_ACTION     = 'appointease_rt_test_hook';
	const GENERATE_ACTION = 'appointease_rt_generate_secrets';

	/** Fields that are secrets: never printed back in full, empty input keeps them. */
	const SECRET_FIELDS = array( 'hook_secret', 'token_secret' );

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
		add_action( 'admin_init', array( $this, 'register_setting' ) );
		add_action( 'admin_post_' . self::TEST_ACTION, array( $this, 'handle_test' ) );
		add_action( 'admin_post_' . self::GENERATE_ACTION, array( $this, 'handle_generate' ) );
		add_filter( 'plugin_action_links_' . plugin_basename( APPOINTEASE_RT_FILE ), array( __CLASS__, 'action_links' ) );
	}

	/**
	 * Adds the page under Settings.
	 */
	public function add_page(): void {
		add_options_page(
			__( 'AppointEase Realtime', 'appointease-realtime-bridge' ),
			__( 'AppointEase Realtime', 'appointease-realtime-bridge' ),
			self::CAPABILITY,
			self::SLUG,
			array( $this, 'render' )
		);
	}

	/**
	 * The option, saved through options.php (Settings API: manage_options and the
	 * "appointease_rt-options" nonce are checked there), sanitized by sanitize().
	 */
	public function register_setting(): void {
		register_setting(
			self::GROUP,
			AppointEase_RT_Config::OPTION,
			array(
				'type'              => 'object',
				'sanitize_callback' => array( $this, 'sanitize' ),
				'default'           => array(),
				'show_in_rest'      => false,
			)
		);
	}

	/**
	 * "Settings" next to Deactivate on the Plugins screen.
	 *
	 * @param array $links Links.
	 * @return array
	 */
	public static function action_links( $links ) {
		$url   = add_query_arg( array( 'page' => self::SLUG ), admin_url( 'options-general.php' ) );
		$links = (array) $links;
		array_unshift( $links, '<a href="' . esc_url( $url ) . '">' . esc_html__( 'Settings', 'appointease-realtime-bridge' ) . '</a>' );
		return $links;
	}

	/**
	 * URL of the page.
	 */
	private static function page_url(): string {
		return add_query_arg( array( 'page' => self::SLUG ), admin_url( 'options-general.php' ) );
	}

	/**
	 * Validates what the form sent. A refused field keeps its stored value and
	 * adds an error notice; an empty secret keeps the stored secret; a field set
	 * by a wp-config.php constant is never changed here.
	 *
	 * @param mixed $input The submitted array.
	 * @return array<string, string>
	 */
	public function sanitize( $input ): array {
		$input  = is_array( $input ) ? $input : array();
		$stored = get_option( AppointEase_RT_Config::OPTION, array() );
		$stored = is_array( $stored ) ? $stored : array();
		$config = $this->plugin->config();
		$labels = self::labels();
		$out    = array();
		foreach ( array_keys( AppointEase_RT_Config::CONSTANTS ) as $field ) {
			$previous = isset( $stored[ $field ] ) && is_string( $stored[ $field ] ) ? $stored[ $field ] : '';
			if ( $config->is_locked( $field ) ) {
				$out[ $field ] = $previous;
				continue;
			}
			$value  = isset( $input[ $field ] ) && is_scalar( $input[ $field ] ) ? trim( (string) $input[ $field ] ) : '';
			$secret = in_array( $field, self::SECRET_FIELDS, true );
			if ( '' === $value ) {
				$out[ $field ] = $secret ? $previous : '';
				continue;
			}
			$error = self::field_error( $field, $value );
			if ( '' !== $error ) {
				self::add_error(
					$field,
					/* translators: 1: field name, 2: what is wrong. */
					sprintf( __( '%1$s was not saved: %2$s The previous value is kept.', 'appointease-realtime-bridge' ), $labels[ $field ], $error )
				);
				$out[ $field ] = $previous;
				continue;
			}
			$out[ $field ] = $secret ? $value : rtrim( $value, '/' );
		}
		if ( '' !== $out['token_secret'] && $out['token_secret'] === $out['hook_secret'] ) {
			self::add_error( 'same_secret', __( 'The token secret must differ from the hook secret. The previous token secret is kept.', 'appointease-realtime-bridge' ) );
			$out['token_secret'] = isset( $stored['token_secret'] ) && is_string( $stored['token_secret'] ) && $stored['token_secret'] !== $out['hook_secret'] ? $stored['token_secret'] : '';
		}
		return $out;
	}

	/**
	 * Why a submitted value is refused ('' when it is fine).
	 *
	 * @param string $field Field.
	 * @param string $value Value (not empty).
	 */
	private static function field_error( string $field, string $value ): string {
		switch ( $field ) {
			case 'url':
				return AppointEase_RT_Config::url_error( $value );
			case 'public_url':
				return AppointEase_RT_Config::public_url_error( $value );
			case 'hook_secret':
				return AppointEase_RT_Config::hook_secret_error( $value );
			default:
				return AppointEase_RT_Config::token_secret_error( $value );
		}
	}

	/**
	 * One error notice per problem (options.php may sanitize twice when the option is new).
	 *
	 * @param string $code    Code.
	 * @param string $message Message.
	 */
	private static function add_error( string $code, string $message ): void {
		foreach ( get_settings_errors( AppointEase_RT_Config::OPTION ) as $error ) {
			if ( $error['code'] === 'appointease_rt_' . $code ) {
				return;
			}
		}
		add_settings_error( AppointEase_RT_Config::OPTION, 'appointease_rt_' . $code, $message, 'error' );
	}

	/**
	 * Field => its name on the page.
	 *
	 * @return array<string, string>
	 */
	private static function labels(): array {
		return array(
			'url'          => __( 'Daemon URL', 'appointease-realtime-bridge' ),
			'public_url'   => __( 'Browser URL', 'appointease-realtime-bridge' ),
			'hook_secret'  => __( 'Hook secret', 'appointease-realtime-bridge' ),
			'token_secret' => __( 'Token secret', 'appointease-realtime-bridge' ),
		);
	}

	/**
	 * The transient key holding the current user's last test result.
	 */
	private static function result_key(): string {
		return 'appointease_rt_test_' . get_current_user_id();
	}

	/**
	 * The transient key saying which secrets were just generated (shown once).
	 */
	private static function generated_key(): string {
		return 'appointease_rt_generated_' . get_current_user_id();
	}

	/**
	 * Stops a request from a user who may not change the settings.
	 */
	private static function require_capability(): void {
		if ( ! current_user_can( self::CAPABILITY ) ) {
			wp_die( esc_html__( 'You are not allowed to do this.', 'appointease-realtime-bridge' ), '', array( 'response' => 403 ) );
		}
	}

	/**
	 * admin-post handler of the "Send test hook" button.
	 */
	public function handle_test(): void {
		self::require_capability();
		check_admin_referer( self::TEST_ACTION );

		$result = $this->plugin->send_test_ping();
		set_transient( self::result_key(), $result, 5 * MINUTE_IN_SECONDS );
		wp_safe_redirect( self::page_url() );
		exit;
	}

	/**
	 * admin-post handler of the "Generate secrets" button: fresh hook and token
	 * secrets (those no constant sets) are saved; the page then shows the
	 * daemon's .env lines once.
	 */
	public function handle_generate(): void {
		self::require_capability();
		check_admin_referer( self::GENERATE_ACTION );

		$config    = $this->plugin->config();
		$stored    = get_option( AppointEase_RT_Config::OPTION, array() );
		$stored    = is_array( $stored ) ? $stored : array();
		$generated = array();
		if ( ! $config->is_locked( 'hook_secret' ) ) {
			$stored['hook_secret'] = AppointEase_RT_Config::generate_hook_secret();
			$generated[]           = 'hook_secret';
		}
		if ( ! $config->is_locked( 'token_secret' ) ) {
			$stored['token_secret'] = AppointEase_RT_Config::generate_token_secret();
			$generated[]            = 'token_secret';
		}
		if ( array() !== $generated ) {
			update_option( AppointEase_RT_Config::OPTION, $stored );
			set_transient( self::generated_key(), $generated, 10 * MINUTE_IN_SECONDS );
		}
		wp_safe_redirect( self::page_url() );
		exit;
	}

	/**
	 * Renders the page.
	 */
	public function render(): void {
		if ( ! current_user_can( self::CAPABILITY ) ) {
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

			<?php $this->render_generated(); ?>

			<?php foreach ( $problems as $problem ) : ?>
				<div class="notice notice-warning"><p><?php echo esc_html( $problem ); ?></p></div>
			<?php endforeach; ?>

			<?php if ( is_array( $test ) ) : ?>
				<div class="notice <?php echo esc_attr( $test['ok'] ? 'notice-success' : 'notice-error' ); ?>">
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

			<h2><?php esc_html_e( 'Connection to the daemon', 'appointease-realtime-bridge' ); ?></h2>
			<p><?php esc_html_e( 'A constant in wp-config.php wins over the value saved here; such fields are shown locked.', 'appointease-realtime-bridge' ); ?></p>
			<form method="post" action="<?php echo esc_url( admin_url( 'options.php' ) ); ?>" id="appointease-rt-settings">
				<?php settings_fields( self::GROUP ); ?>
				<table class="form-table" role="presentation">
					<?php
					$this->render_url_field( 'url', __( 'How WordPress (PHP, server side) reaches the daemon, e.g. http://127.0.0.1:8080. Hooks go to this URL + /hooks/booking.', 'appointease-realtime-bridge' ) );
					$this->render_url_field( 'public_url', __( 'What browsers use (the booking block\'s wsUrl), e.g. wss://example.com/realtime.', 'appointease-realtime-bridge' ) );
					$this->render_secret_field( 'hook_secret', __( 'Signs the hooks (Standard Webhooks): "whsec_" + base64. The daemon\'s HOOK_SECRET must be the same.', 'appointease-realtime-bridge' ) );
					$this->render_secret_field( 'token_secret', __( 'Signs connection tokens (JWT HS256), at least 32 characters, different from the hook secret. The daemon\'s TOKEN_SECRET must be the same.', 'appointease-realtime-bridge' ) );
					?>
				</table>
				<?php submit_button( __( 'Save settings', 'appointease-realtime-bridge' ) ); ?>
			</form>

			<?php $locked_both = $config->is_locked( 'hook_secret' ) && $config->is_locked( 'token_secret' ); ?>
			<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>" id="appointease-rt-generate">
				<input type="hidden" name="action" value="<?php echo esc_attr( self::GENERATE_ACTION ); ?>" />
				<?php wp_nonce_field( self::GENERATE_ACTION ); ?>
				<p>
					<?php esc_html_e( 'Generate secrets replaces the stored hook and token secrets with new random ones and shows, once, the lines for the daemon\'s .env. Until the daemon has them, it refuses the hooks and tokens of this site.', 'appointease-realtime-bridge' ); ?>
				</p>
				<?php
				submit_button(
					__( 'Generate secrets', 'appointease-realtime-bridge' ),
					'secondary',
					'generate',
					false,
					$locked_both
						? array( 'disabled' => 'disabled' )
						: array( 'onclick' => 'return window.confirm(' . wp_json_encode( __( 'Replace the stored secrets? The daemon must get the new values.', 'appointease-realtime-bridge' ) ) . ');' )
				);
				?>
			</form>

			<h2><?php esc_html_e( 'Status', 'appointease-realtime-bridge' ); ?></h2>
			<table class="form-table" role="presentation">
				<tr>
					<th scope="row"><?php esc_html_e( 'Connection tokens', 'appointease-realtime-bridge' ); ?></th>
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
					<th scope="row"><?php esc_html_e( 'Hold enforcement', 'appointease-realtime-bridge' ); ?></th>
					<td id="appointease-rt-hold-enforcement">
						<?php $refused = AppointEase_RT_Hold_Guard::refused_count(); ?>
						<?php if ( ! $config->can_issue_tokens() ) : ?>
							<strong><?php esc_html_e( 'Off', 'appointease-realtime-bridge' ); ?></strong>
							<p><?php esc_html_e( 'No usable token secret: the daemon sets its hold cookie only with a TOKEN_SECRET, so WordPress cannot tell who holds a slot. Bookings are not checked against holds (only by AppointEase itself, where it calls appointease_realtime_can_book()). Set the token secret here and in the daemon to turn it on.', 'appointease-realtime-bridge' ); ?></p>
						<?php elseif ( ! $this->plugin->hold_guard()->enabled() ) : ?>
							<strong><?php esc_html_e( 'Off', 'appointease-realtime-bridge' ); ?></strong>
							<p><?php esc_html_e( 'Turned off by the appointease_rt_enforce_holds filter.', 'appointease-realtime-bridge' ); ?></p>
						<?php else : ?>
							<strong><?php esc_html_e( 'On', 'appointease-realtime-bridge' ); ?></strong>
							<p><?php esc_html_e( 'A booking or reschedule onto a time that another visitor holds in the daemon is refused (HTTP 409) before AppointEase sees it; the holder books as usual.', 'appointease-realtime-bridge' ); ?></p>
						<?php endif; ?>
						<p class="appointease-rt-refused">
							<?php
							echo esc_html(
								sprintf(
									/* translators: %d: number of refused bookings. */
									_n( '%d booking refused so far because someone else held the time.', '%d bookings refused so far because someone else held the time.', $refused, 'appointease-realtime-bridge' ),
									$refused
								)
							);
							?>
						</p>
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

			<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>" id="appointease-rt-test">
				<input type="hidden" name="action" value="<?php echo esc_attr( self::TEST_ACTION ); ?>" />
				<?php wp_nonce_field( self::TEST_ACTION ); ?>
				<?php submit_button( __( 'Send test hook', 'appointease-realtime-bridge' ), 'secondary', 'submit', false, $config->can_deliver() ? array() : array( 'disabled' => 'disabled' ) ); ?>
			</form>
		</div>
		<?php
	}

	/**
	 * The .env lines of the secrets generated just before, once (then forgotten).
	 */
	private function render_generated(): void {
		$generated = get_transient( self::generated_key() );
		if ( false === $generated ) {
			return;
		}
		delete_transient( self::generated_key() );
		$stored = get_option( AppointEase_RT_Config::OPTION, array() );
		$names  = array(
			'hook_secret'  => 'HOOK_SECRET',
			'token_secret' => 'TOKEN_SECRET',
		);
		$lines  = array();
		foreach ( (array) $generated as $field ) {
			if ( isset( $names[ $field ] ) && is_array( $stored ) && ! empty( $stored[ $field ] ) && is_string( $stored[ $field ] ) ) {
				$lines[] = $names[ $field ] . '=' . $stored[ $field ];
			}
		}
		if ( array() === $lines ) {
			return;
		}
		?>
		<div class="notice notice-warning">
			<p><strong><?php esc_html_e( 'New secrets saved. Put these lines into the daemon\'s .env (or its environment) and restart it. They are shown only this once.', 'appointease-realtime-bridge' ); ?></strong></p>
			<textarea id="appointease-rt-env" class="large-text code" rows="<?php echo esc_attr( (string) count( $lines ) ); ?>" readonly="readonly"><?php echo esc_textarea( implode( "\n", $lines ) ); ?></textarea>
		</div>
		<?php
	}

	/**
	 * One URL row: an input, or the constant's value, locked.
	 *
	 * @param string $field       url | public_url.
	 * @param string $description Help text.
	 */
	private function render_url_field( string $field, string $description ): void {
		$config   = $this->plugin->config();
		$labels   = self::labels();
		$id       = 'appointease-rt-' . str_replace( '_', '-', $field );
		$constant = AppointEase_RT_Config::CONSTANTS[ $field ];
		$value    = 'url' === $field ? $config->url : $config->public_url;
		?>
		<tr>
			<th scope="row"><label for="<?php echo esc_attr( $id ); ?>"><?php echo esc_html( $labels[ $field ] ); ?></label></th>
			<td>
				<?php if ( $config->is_locked( $field ) ) : ?>
					<input type="text" id="<?php echo esc_attr( $id ); ?>" class="regular-text code" value="<?php echo esc_attr( $value ); ?>" readonly="readonly" disabled="disabled" />
					<?php $this->render_locked_note( $constant ); ?>
				<?php else : ?>
					<input type="text" id="<?php echo esc_attr( $id ); ?>" name="<?php echo esc_attr( AppointEase_RT_Config::OPTION . '[' . $field . ']' ); ?>" class="regular-text code" value="<?php echo esc_attr( $value ); ?>" spellcheck="false" />
				<?php endif; ?>
				<p class="description"><?php echo esc_html( $description ); ?></p>
			</td>
		</tr>
		<?php
	}

	/**
	 * One secret row: an empty password input (empty keeps the stored value) and
	 * the stored value masked, or the constant's value masked, locked.
	 *
	 * @param string $field       hook_secret | token_secret.
	 * @param string $description Help text.
	 */
	private function render_secret_field( string $field, string $description ): void {
		$config   = $this->plugin->config();
		$labels   = self::labels();
		$id       = 'appointease-rt-' . str_replace( '_', '-', $field );
		$constant = AppointEase_RT_Config::CONSTANTS[ $field ];
		$value    = 'hook_secret' === $field ? $config->secret : $config->token_secret;
		?>
		<tr>
			<th scope="row"><label for="<?php echo esc_attr( $id ); ?>"><?php echo esc_html( $labels[ $field ] ); ?></label></th>
			<td>
				<?php if ( $config->is_locked( $field ) ) : ?>
					<code id="<?php echo esc_attr( $id ); ?>"><?php echo esc_html( AppointEase_RT_Config::mask( $value ) ); ?></code>
					<?php $this->render_locked_note( $constant ); ?>
				<?php else : ?>
					<input type="password" id="<?php echo esc_attr( $id ); ?>" name="<?php echo esc_attr( AppointEase_RT_Config::OPTION . '[' . $field . ']' ); ?>" class="regular-text code" value="" autocomplete="new-password" spellcheck="false" />
					<p>
						<?php if ( '' === $value ) : ?>
							<?php esc_html_e( 'Not set.', 'appointease-realtime-bridge' ); ?>
						<?php else : ?>
							<?php /* translators: %s: the secret, shortened (first and last characters). */ ?>
							<?php echo esc_html( sprintf( __( 'Stored: %s. Leave the field empty to keep it.', 'appointease-realtime-bridge' ), AppointEase_RT_Config::mask( $value ) ) ); ?>
						<?php endif; ?>
					</p>
				<?php endif; ?>
				<p class="description"><?php echo esc_html( $description ); ?></p>
			</td>
		</tr>
		<?php
	}

	/**
	 * "Set in wp-config.php" note of a locked field.
	 *
	 * @param string $constant Constant name.
	 */
	private function render_locked_note( string $constant ): void {
		?>
		<p class="appointease-rt-locked">
			<?php /* translators: %s: constant name. */ ?>
			<?php echo esc_html( sprintf( __( 'Locked: set by %s in wp-config.php, which wins over this page. Remove the constant to edit it here.', 'appointease-realtime-bridge' ), $constant ) ); ?>
		</p>
		<?php
	}
}
