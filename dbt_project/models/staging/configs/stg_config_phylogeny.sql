select
    cast(population as varchar) as population,
    cast(statistic as varchar) as statistic,
    cast(value as double) as value,
    cast(detail as varchar) as detail
from {{ source('lake', 'config_phylogeny') }}
