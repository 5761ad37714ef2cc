-- The rule is applied to every sample (as the paper does for the taxonomic model); `category` keeps it
-- for memorized samples only.
with scored as (
    select
        s.sample_id,
        s.model_id,
        s.corpus,
        s.score,
        s.memorized,
        s.prompt_perplexity,
        s.continuation_perplexity,
        s.sequence_perplexity,
        f.duplicates,
        f.max_frequency,
        f.mean_frequency,
        f.min_frequency,
        f.median_frequency,
        f.p25_frequency,
        f.p75_frequency,
        f.incrementing,
        f.repeating,
        f.is_templating,
        f.huffman_length,
        f.semantic_matches,
        f.textual_matches,
        f.code_score,
        f.is_code,
        f.code_label,
        case
            when f.duplicates >= {{ var('recitation_threshold') }} then 'recitation'
            when f.is_templating then 'reconstruction'
            else 'recollection'
        end as rule_category
    from {{ ref('stg_memorization_scores') }} as s
    join {{ ref('stg_memorization_features') }} as f using (sample_id, model_id)
)

select
    sc.sample_id,
    sc.model_id,
    sc.corpus,
    m.display_name,
    m.family,
    sc.score,
    sc.memorized,
    sc.prompt_perplexity,
    sc.continuation_perplexity,
    sc.sequence_perplexity,
    sc.duplicates,
    sc.max_frequency,
    sc.mean_frequency,
    sc.min_frequency,
    sc.median_frequency,
    sc.p25_frequency,
    sc.p75_frequency,
    sc.incrementing,
    sc.repeating,
    sc.is_templating,
    sc.huffman_length,
    sc.semantic_matches,
    sc.textual_matches,
    sc.code_score,
    sc.is_code,
    sc.code_label,
    smp.text,
    smp.continuation_text,
    sc.rule_category,
    case when sc.memorized then sc.rule_category else 'not_memorized' end as category
from scored as sc
left join {{ ref('stg_memorization_samples') }} as smp using (sample_id)
left join {{ ref('stg_models') }} as m using (model_id)
