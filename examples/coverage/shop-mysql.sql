-- The simulator's shop (crates/fundguard-sim/src/shop.rs) as MySQL/MariaDB DDL.
-- Amounts are integers in minor units (fen); payments also carry the amount in yuan.
CREATE DATABASE IF NOT EXISTS shop;

CREATE TABLE shop.orders (
  id BIGINT NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  merchant_id BIGINT NOT NULL,
  status VARCHAR(16) NOT NULL COMMENT 'CREATED, PAYING, PAID, SHIPPED, COMPLETED, CANCELLED, REFUNDED',
  total_amount BIGINT NOT NULL COMMENT 'fen',
  discount_amount BIGINT NOT NULL DEFAULT 0 COMMENT 'fen',
  pay_amount BIGINT NOT NULL COMMENT 'what the buyer pays, fen',
  currency CHAR(3) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB;

CREATE TABLE shop.payments (
  id BIGINT NOT NULL PRIMARY KEY,
  order_id BIGINT NOT NULL,
  channel VARCHAR(16) NOT NULL COMMENT 'alipay, wechat, card',
  status VARCHAR(16) NOT NULL COMMENT 'INIT, SUCCESS, FAILED',
  amount BIGINT NOT NULL COMMENT 'fen',
  amount_yuan DECIMAL(16,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  CONSTRAINT payments_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB;

CREATE TABLE shop.refunds (
  id BIGINT NOT NULL PRIMARY KEY,
  order_id BIGINT NOT NULL,
  payment_id BIGINT NOT NULL,
  status VARCHAR(16) NOT NULL COMMENT 'PENDING, SUCCESS, FAILED',
  amount BIGINT NOT NULL COMMENT 'fen',
  currency CHAR(3) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  CONSTRAINT refunds_payment FOREIGN KEY (payment_id) REFERENCES payments (id)
) ENGINE=InnoDB;

CREATE TABLE shop.settlements (
  id BIGINT NOT NULL PRIMARY KEY,
  order_id BIGINT NOT NULL,
  merchant_id BIGINT NOT NULL,
  gross_amount BIGINT NOT NULL COMMENT 'fen',
  commission_rate DECIMAL(6,4) NOT NULL,
  commission_amount BIGINT NOT NULL COMMENT 'fen',
  net_amount BIGINT NOT NULL COMMENT 'fen',
  currency CHAR(3) NOT NULL,
  created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB;

CREATE TABLE shop.ledger_entries (
  id BIGINT NOT NULL PRIMARY KEY,
  txn_id VARCHAR(64) NOT NULL,
  account VARCHAR(64) NOT NULL,
  direction VARCHAR(6) NOT NULL COMMENT 'DEBIT or CREDIT',
  amount BIGINT NOT NULL COMMENT 'fen',
  currency CHAR(3) NOT NULL,
  created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB;
