-- token_ids stay in the lake (the marts need the decoded text only); "offset" is renamed: it is a SQL keyword
select
    cast(sample_id as varchar) as sample_id,
    cast(corpus as varchar) as corpus,
    cast(tokenizer_id as varchar) as tokenizer_id,
    cast(doc_id as varchar) as doc_id,
    cast("offset" as bigint) as token_offset,
    cast(text as varchar) as text,
    cast(prompt_text as varchar) as prompt_text,
    cast(continuation_text as varchar) as continuation_text
from {{ source('lake', 'memorization_samples') }}
