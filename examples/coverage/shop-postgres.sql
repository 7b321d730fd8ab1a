-- The simulator's shop (crates/fundguard-sim/src/shop.rs) as PostgreSQL DDL.
-- Amounts are integers in minor units (fen); payments also carry the amount in yuan.
CREATE SCHEMA IF NOT EXISTS shop;

CREATE TABLE shop.orders (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL,
  merchant_id bigint NOT NULL,
  status varchar(16) NOT NULL,
  total_amount bigint NOT NULL,
  discount_amount bigint NOT NULL DEFAULT 0,
  pay_amount bigint NOT NULL,
  currency char(3) NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
COMMENT ON COLUMN shop.orders.status IS 'CREATED, PAYING, PAID, SHIPPED, COMPLETED, CANCELLED, REFUNDED';
COMMENT ON COLUMN shop.orders.pay_amount IS 'what the buyer pays, fen';

CREATE TABLE shop.payments (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES shop.orders (id),
  channel varchar(16) NOT NULL,
  status varchar(16) NOT NULL,
  amount bigint NOT NULL,
  amount_yuan numeric(16,2) NOT NULL,
  currency char(3) NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
COMMENT ON COLUMN shop.payments.amount IS 'fen';

CREATE TABLE shop.refunds (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL,
  payment_id bigint NOT NULL,
  status varchar(16) NOT NULL,
  amount bigint NOT NULL,
  currency char(3) NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  CONSTRAINT refunds_payment FOREIGN KEY (payment_id) REFERENCES shop.payments (id)
);

CREATE TABLE shop.settlements (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL,
  merchant_id bigint NOT NULL,
  gross_amount bigint NOT NULL,
  commission_rate numeric(6,4) NOT NULL,
  commission_amount bigint NOT NULL,
  net_amount bigint NOT NULL,
  currency char(3) NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE shop.ledger_entries (
  id bigint PRIMARY KEY,
  txn_id varchar(64) NOT NULL,
  account varchar(64) NOT NULL,
  direction varchar(6) NOT NULL,
  amount bigint NOT NULL,
  currency char(3) NOT NULL,
  created_at timestamptz NOT NULL
);
