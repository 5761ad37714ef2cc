with ranked as (
    select
        model_id,
        corpus,
        category,
        row_number() over (
            partition by model_id, corpus, category
            order by score desc nulls last, duplicates desc nulls last, sample_id
        ) as rank,
        sample_id,
        text,
        continuation_text,
        score,
        duplicates,
        is_templating,
        code_label
    from {{ ref('memorization_taxonomy') }}
)

select *
from ranked
where rank <= {{ var('examples_per_category') }}
