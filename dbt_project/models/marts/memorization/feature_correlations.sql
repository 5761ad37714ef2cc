-- pearson_sql recomputes the 'all' subset's Pearson correlation from memorization_taxonomy as an independent
-- cross-check of the flow's numbers, on the flow's samples: those whose every model feature is finite
-- (fingerprinting/memorization/pipeline.py fit_tables drops the others, e.g. a null perplexity, before
-- correlating); undefined (null) below 3 samples or for a constant column, as in the Python reference.
with long as (
    unpivot (
        select
            model_id, corpus, score,
            cast(duplicates as double) as duplicates,
            max_frequency, mean_frequency, min_frequency, median_frequency, p25_frequency, p75_frequency,
            prompt_perplexity, continuation_perplexity, sequence_perplexity,
            cast(textual_matches as double) as textual_matches,
            cast(semantic_matches as double) as semantic_matches,
            huffman_length,
            cast(is_templating as double) as is_templating
        from {{ ref('memorization_taxonomy') }}
        where isfinite(score) and is_templating is not null
          and isfinite(duplicates) and isfinite(max_frequency) and isfinite(mean_frequency)
          and isfinite(min_frequency) and isfinite(median_frequency) and isfinite(p25_frequency)
          and isfinite(p75_frequency) and isfinite(prompt_perplexity) and isfinite(continuation_perplexity)
          and isfinite(sequence_perplexity) and isfinite(textual_matches) and isfinite(semantic_matches)
          and isfinite(huffman_length)
    )
    on duplicates, max_frequency, mean_frequency, min_frequency, median_frequency, p25_frequency,
       p75_frequency, prompt_perplexity, continuation_perplexity, sequence_perplexity, textual_matches,
       semantic_matches, huffman_length, is_templating
    into name feature value value
),

recomputed as (
    select
        model_id,
        corpus,
        feature,
        case
            when count(*) >= 3 and max(value) > min(value) and max(score) > min(score)
                then corr(value, score)
        end as pearson_sql
    from long
    group by model_id, corpus, feature
)

select
    c.model_id,
    c.corpus,
    c.feature,
    c.subset,
    c.n,
    -- NaN (undefined) becomes null, so comparisons and range tests see "no value"
    case when not isnan(c.pearson) then c.pearson end as pearson,
    case when not isnan(c.spearman) then c.spearman end as spearman,
    case when not isnan(c.xi) then c.xi end as xi,
    case when c.subset = 'all' then r.pearson_sql end as pearson_sql
from {{ ref('stg_memorization_correlations') }} as c
left join recomputed as r using (model_id, corpus, feature)
