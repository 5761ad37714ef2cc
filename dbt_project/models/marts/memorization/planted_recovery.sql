-- Only a document's first window (token_offset = 0) starts where the planted text starts, so only its
-- continuation is the planted sequence's own 32-gram, which occurs exactly planted_count times.
select
    t.sample_id,
    t.model_id,
    t.corpus,
    s.doc_id,
    g.planted_id,
    g.kind,
    g.planted_count,
    t.duplicates,
    t.memorized,
    t.score,
    t.category
from {{ ref('stg_memorization_samples') }} as s
join {{ ref('stg_memorization_ground_truth') }} as g on g.corpus = s.corpus and g.doc_id = s.doc_id
join {{ ref('memorization_taxonomy') }} as t on t.sample_id = s.sample_id
where s.token_offset = 0
