{# The statistics every stats mart reports: min, max, mean, population variance (divide by n), pair count. #}
{% macro similarity_stats(col='similarity') %}
    min({{ col }}) as min_similarity,
    max({{ col }}) as max_similarity,
    avg({{ col }}) as mean_similarity,
    var_pop({{ col }}) as variance,
    count(*) as n_pairs
{% endmacro %}
