-- the generated token ids stay in the lake
select
    cast(sample_id as varchar) as sample_id,
    cast(model_id as varchar) as model_id,
    cast(corpus as varchar) as corpus,
    cast(score as double) as score,
    cast(memorized as boolean) as memorized,
    cast(prompt_perplexity as double) as prompt_perplexity,
    cast(continuation_perplexity as double) as continuation_perplexity,
    cast(sequence_perplexity as double) as sequence_perplexity,
    cast(error as varchar) as error,
    cast(run_id as varchar) as run_id,
    created_at
from {{ source('lake', 'memorization_scores') }}
