select
    cast(model_id as varchar) as model_id,
    cast(source as varchar) as source,
    cast(family as varchar) as family,
    cast(model_type as varchar) as model_type,
    cast(display_name as varchar) as display_name,
    cast(arch as varchar) as arch,
    registered_at
from {{ source('lake', 'models') }}
