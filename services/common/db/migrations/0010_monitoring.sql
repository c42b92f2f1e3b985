-- The monitoring routes aggregate one deployment's predictions over a time range. The covering index
-- answers volume, latency and outlier figures from the index alone (an index-only scan once vacuum has
-- marked the pages visible), so a range of a million predictions is read without touching the table; it
-- replaces the plain (deployment_id, predicted_at) index, whose every use it serves.
CREATE INDEX predicted_assets_monitoring ON predicted_assets (deployment_id, predicted_at)
    INCLUDE (project_id, champion_latency_ms, shadow_latency_ms, outlier_score);
DROP INDEX predicted_assets_predicted_at;

-- Quality over time reads only the reviewed predictions of a range.
CREATE INDEX predicted_assets_reviewed ON predicted_assets (deployment_id, predicted_at)
    WHERE review IS NOT NULL;

-- Drift reports of a deployment by window, for the time-range route and the newest-first list.
CREATE INDEX drift_reports_deployment_window ON drift_reports (deployment_id, window_end);
