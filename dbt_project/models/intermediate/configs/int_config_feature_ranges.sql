-- Range (max - min) of every numeric feature over ALL config rows: the denominator of standard Gower.
select
    feature,
    min(num_value) as min_value,
    max(num_value) as max_value,
    max(num_value) - min(num_value) as value_range
from {{ ref('int_config_feature_values') }}
where is_numeric
group by feature
