-- AppointEase's two tables, as the plugin creates them (shared/booking-block.md,
-- "The two tables"), with {prefix} for $wpdb->prefix. The one copy of this schema, read by
-- the daemon's MySQL store (store/mysql.py: init-db, create_schema), by the PHPUnit tests
-- (tests/php/SlotLocksTestCase.php) and by the test WordPress install
-- (tests/wordpress/php/install.php). Readers drop the lines starting with "--" and split
-- the rest on ";", so keep comments on lines of their own and no ";" inside a statement.

CREATE TABLE IF NOT EXISTS {prefix}appointments (
  id mediumint(9) NOT NULL AUTO_INCREMENT,
  name varchar(100) NOT NULL,
  email varchar(100) NOT NULL,
  phone varchar(20),
  appointment_date datetime NOT NULL,
  status varchar(20) DEFAULT 'confirmed',
  service_id mediumint(9),
  employee_id mediumint(9),
  customer_id mediumint(9),
  notes text,
  payment_status varchar(20) DEFAULT 'pending',
  total_amount decimal(10,2),
  strong_id varchar(20) UNIQUE,
  idempotency_key varchar(64) UNIQUE,
  created_at datetime DEFAULT CURRENT_TIMESTAMP,
  rescheduled_at datetime NULL,
  original_date datetime NULL,
  PRIMARY KEY (id),
  INDEX idx_appointment_slot (appointment_date, employee_id),
  INDEX idx_email_date (email, appointment_date)
) DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}appointease_slot_locks (
  id mediumint(9) NOT NULL AUTO_INCREMENT,
  date DATE NOT NULL,
  time TIME NOT NULL,
  employee_id mediumint(9) NOT NULL,
  client_id VARCHAR(255) NOT NULL,
  expires_at DATETIME NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY unique_slot (date, time, employee_id),
  INDEX idx_expires (expires_at),
  INDEX idx_client (client_id)
) DEFAULT CHARSET=utf8mb4;
