-- The 18 architecture features in long form, one row per known value: numeric features as double,
-- categorical and boolean ones as text. Set-based Gower (macros/gower.sql) joins this to itself.
{%- set numeric = var('config_numeric_features') %}
{%- set categorical = var('config_categorical_features') %}
with configs as (
    select * from {{ ref('stg_model_configs') }}
),

numeric_values as (
    unpivot (
        select model_id, {% for f in numeric %}cast({{ f }} as double) as {{ f }}{{ ', ' if not loop.last }}{% endfor %}
        from configs
    ) on {{ numeric | join(', ') }} into name feature value num_value
),

categorical_values as (
    unpivot (
        select model_id, {% for f in categorical %}cast({{ f }} as varchar) as {{ f }}{{ ', ' if not loop.last }}{% endfor %}
        from configs
    ) on {{ categorical | join(', ') }} into name feature value cat_value
)

select model_id, feature, true as is_numeric, num_value, cast(null as varchar) as cat_value
from numeric_values
where num_value is not null and not isnan(num_value)
union all
select model_id, feature, false as is_numeric, cast(null as double) as num_value, cat_value
from categorical_values
where cat_value is not null
