-- A migration for design review: refunds start charging a fee. `fundguard coverage --diff`
-- reports `shop.refunds.refund_fee` as a new money field no rule checks.
ALTER TABLE shop.refunds ADD COLUMN refund_fee BIGINT NOT NULL DEFAULT 0;
