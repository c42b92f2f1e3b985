-- The promotion gate (continuous-deployment policy shadow_then_promote): the policy, the champion a
-- promotion replaced (watched as shadow while shadow_model_version_id still equals it, so a person who
-- sets another shadow ends the watch without the gate having to notice), and every decision with its
-- figures. The watched id is only ever compared with the shadow, which has the project-scoped foreign key.
ALTER TABLE deployments DROP CONSTRAINT deployments_cd_policy_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_cd_policy_check
    CHECK (cd_policy IN ('deploy_champion', 'deploy_shadow', 'shadow_then_promote', 'manual'));
ALTER TABLE deployments ADD COLUMN gate_watched_model_version_id uuid;

CREATE TABLE gate_decisions (
    id                         uuid PRIMARY KEY,  -- the DeploymentUpdated event's id: a replay stores it once
    project_id                 uuid NOT NULL,
    deployment_id              uuid NOT NULL,
    champion_model_version_id  uuid NOT NULL,  -- the roles compared, as they were before the decision
    shadow_model_version_id    uuid NOT NULL,
    outcome                    text NOT NULL
                               CHECK (outcome IN ('held', 'promoted', 'watching', 'kept', 'rolled_back')),
    reason                     text NOT NULL,
    decision                   jsonb NOT NULL CHECK (jsonb_typeof(decision) = 'object'),
    decided_at                 timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (deployment_id, project_id) REFERENCES deployments (id, project_id) ON DELETE CASCADE
);
CREATE INDEX gate_decisions_deployment ON gate_decisions (deployment_id, decided_at);
