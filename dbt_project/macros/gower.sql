{#
  Gower distance of configs, set-based. One definition shared by every model that compares configs
  (config_drift_edges, config_field_mutation, the baselines of config_drift_summary), so drift along
  lineage edges and the sibling / random-pair baselines are the same quantity.

  Per feature present on BOTH sides (int_config_feature_values has no null rows, so a missing value
  on either side drops the feature):
    numeric, standard : |x - y| / (max - min of the feature over all model_configs rows); 0 when the range is 0
    numeric, max      : |x - y| / max(|x|, |y|); 0 when both are 0 (the source notebook's variant)
    categorical/bool  : 0 when equal, else 1 (both variants)
  A pair's distance is the mean over its compared features; null when none was compared.
  fingerprinting/configs/drift.py (gower_pair, edge_drift) is the Python reference.
#}

{# One row per pair x compared feature: carry columns of `pairs`, feature, d_standard, d_max, changed. #}
{% macro config_feature_diffs(pairs, left_id, right_id, carry) %}
    select
        {%- for c in carry %}
        p.{{ c }},
        {%- endfor %}
        a.feature,
        case
            when not a.is_numeric then case when a.cat_value = b.cat_value then 0.0 else 1.0 end
            when r.value_range > 0 then abs(a.num_value - b.num_value) / r.value_range
            else 0.0
        end as d_standard,
        case
            when not a.is_numeric then case when a.cat_value = b.cat_value then 0.0 else 1.0 end
            when greatest(abs(a.num_value), abs(b.num_value)) > 0
                then abs(a.num_value - b.num_value) / greatest(abs(a.num_value), abs(b.num_value))
            else 0.0
        end as d_max,
        case when a.is_numeric then a.num_value <> b.num_value else a.cat_value <> b.cat_value end as changed
    from {{ pairs }} as p
    join {{ ref('int_config_feature_values') }} as a on a.model_id = p.{{ left_id }}
    join {{ ref('int_config_feature_values') }} as b on b.model_id = p.{{ right_id }} and b.feature = a.feature
    left join {{ ref('int_config_feature_ranges') }} as r on r.feature = a.feature
{% endmacro %}

{# Aggregates of config_feature_diffs rows per pair (use with group by the pair's keys). #}
{% macro gower_aggregates() %}
        avg(d_standard) as gower_standard,
        avg(d_max) as gower_max,
        count(*) as n_compared,
        coalesce(list_sort(list(feature) filter (where changed)), []::varchar[]) as changed_fields
{% endmacro %}

{# The drift statistics config_drift_summary reports for one group of pairs. #}
{% macro drift_stats(standard='gower_standard', maxv='gower_max') %}
        count(*) as n_edges,
        count({{ standard }}) as n_with_drift,
        avg({{ standard }}) as mean_drift,
        quantile_cont({{ standard }}, 0.5) as median_drift,
        quantile_cont({{ standard }}, 0.25) as p25_drift,
        quantile_cont({{ standard }}, 0.75) as p75_drift,
        count(*) filter (where {{ standard }} = 0) / nullif(count({{ standard }}), 0) as share_zero_drift,
        avg({{ maxv }}) as mean_drift_max
{% endmacro %}

{# The architecture features by kind (dbt_project.yml vars; tests check they equal features.py). #}
{% macro config_features() %}
    {{ return(var('config_numeric_features') + var('config_categorical_features')) }}
{% endmacro %}
