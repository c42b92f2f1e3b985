-- ModelIO's `scores_are_logits` became the output format `logits` (softmax is the default).
UPDATE model_versions
SET io = (io - 'scores_are_logits')
    || CASE WHEN (io ->> 'scores_are_logits')::boolean THEN '{"output_format": "logits"}'::jsonb ELSE '{}'::jsonb END
WHERE io ? 'scores_are_logits';
