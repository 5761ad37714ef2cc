{#
  Wilson score interval of k successes in n trials (95 % with z = 1.959964):
    centre = (p + z^2 / 2n) / (1 + z^2 / n),  half = z * sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)
  Rounded to 10 decimals so hand-worked unit tests can state it (+ 0.0 turns -0.0 into 0); null when n = 0.
#}
{% macro wilson_bound(k, n, sign, z=1.959964) %}
    case when {{ n }} > 0 then round(
        (({{ k }})::double / ({{ n }}) + {{ z }} * {{ z }} / (2.0 * ({{ n }}))
         {{ sign }} {{ z }} * sqrt(({{ k }})::double / ({{ n }}) * (1 - ({{ k }})::double / ({{ n }})) / ({{ n }})
                            + {{ z }} * {{ z }} / (4.0 * ({{ n }}) * ({{ n }}))))
        / (1 + {{ z }} * {{ z }} / ({{ n }})), 10) + 0.0 end
{% endmacro %}
