select
    cast(model_id as varchar) as model_id,
    cast(source as varchar) as source,
    cast(license as varchar[]) as license,
    cast(languages as varchar[]) as languages,
    cast(pipeline_tag as varchar[]) as pipeline_tag,
    cast(library as varchar[]) as library,
    cast(created_at as varchar) as created_at
from {{ source('lake', 'model_traits') }}
