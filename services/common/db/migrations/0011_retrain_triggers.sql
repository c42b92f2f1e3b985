-- Retrain triggers (issue 20): a deployment's trigger policy beside its submitted-count threshold (drift,
-- outlier rate, reviewed quality, cooldown, minimum submitted; '{}' is the threshold alone), and on a
-- pipeline experiment the rule that requested it with its figures (NULL: requested before rules, or made
-- by a person).
ALTER TABLE deployments ADD COLUMN ct_trigger_policy jsonb NOT NULL DEFAULT '{}';
ALTER TABLE experiments ADD COLUMN training_trigger jsonb;

-- Active continuous training needs a rule: the threshold, or one of the policy's (stored without the
-- rules it does not set). The old CHECK (threshold only) has the name Postgres gave it.
DO $$
DECLARE
    old_check text;
BEGIN
    SELECT conname INTO STRICT old_check FROM pg_constraint
    WHERE conrelid = 'deployments'::regclass AND contype = 'c'
      AND pg_get_constraintdef(oid) = 'CHECK (((NOT ct_active) OR (ct_trigger_threshold IS NOT NULL)))';
    EXECUTE format('ALTER TABLE deployments DROP CONSTRAINT %I', old_check);
END $$;
ALTER TABLE deployments ADD CONSTRAINT deployments_ct_active_has_a_rule CHECK (
    NOT ct_active OR ct_trigger_threshold IS NOT NULL
    OR ct_trigger_policy ?| ARRAY['drift', 'outlier_rate', 'quality']
);
