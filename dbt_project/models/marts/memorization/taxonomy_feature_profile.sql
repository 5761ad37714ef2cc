-- Non-finite values (an overflowing perplexity) are left out of every statistic; UNPIVOT drops nulls.
with long as (
    unpivot (
        select
            model_id, corpus, category,
            cast(duplicates as double) as duplicates,
            max_frequency, mean_frequency, min_frequency, median_frequency, p25_frequency, p75_frequency,
            prompt_perplexity, continuation_perplexity, sequence_perplexity,
            cast(textual_matches as double) as textual_matches,
            cast(semantic_matches as double) as semantic_matches,
            huffman_length
        from {{ ref('memorization_taxonomy') }}
    )
    on duplicates, max_frequency, mean_frequency, min_frequency, median_frequency, p25_frequency,
       p75_frequency, prompt_perplexity, continuation_perplexity, sequence_perplexity, textual_matches,
       semantic_matches, huffman_length
    into name feature value value
)

select
    model_id,
    corpus,
    category,
    feature,
    count(*) as n,
    avg(value) as mean,
    min(value) as min,
    quantile_cont(value, 0.25) as p25,
    quantile_cont(value, 0.5) as median,
    quantile_cont(value, 0.75) as p75,
    max(value) as max
from long
where isfinite(value)
group by model_id, corpus, category, feature
