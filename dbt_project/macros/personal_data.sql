{#-
    Personal data (names, emails, phones) reaches crm_analyst only through these macros: masked, to read,
    or as a pseudonym, to join on. A pseudonym is a keyed SHA-256 (hex) of the normalised value with the
    warehouse's secret key (source crm_keys.pii_hash_key, readable by crm_transformer only; see
    plugins/crm_warehouse/access.py): stable across runs and marts, and not reversible by hashing
    candidate values without the key. The clear values are in schema pii, for crm_analyst_pii.
    A model using pseudonym() cross-joins the key as `pii_key`.
-#}

{% macro pseudonym(value) -%}
    encode(sha256(pii_key.key || convert_to({{ value }}, 'UTF8')), 'hex')
{%- endmacro %}

{#- emails compare case-insensitively, without surrounding blanks -#}
{% macro normalised_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}

{#- phones compare by their digits -#}
{% macro normalised_phone(column) -%}
    nullif(regexp_replace({{ column }}, '[^0-9]', '', 'g'), '')
{%- endmacro %}

{#- the first letter of the local part and the domain: j***@example.com -#}
{% macro masked_email(column) -%}
    case
        when {{ normalised_email(column) }} like '%_@_%'
            then left({{ normalised_email(column) }}, 1) || '***@' || split_part({{ normalised_email(column) }}, '@', 2)
    end
{%- endmacro %}

{#- the last two digits: ***67 -#}
{% macro masked_phone(column) -%}
    case when {{ normalised_phone(column) }} is not null then '***' || right({{ normalised_phone(column) }}, 2) end
{%- endmacro %}

{#- initials: J. D. -#}
{% macro masked_name(first_name, last_name) -%}
    nullif(concat_ws(' ', left(nullif(trim({{ first_name }}), ''), 1) || '.', left(nullif(trim({{ last_name }}), ''), 1) || '.'), '')
{%- endmacro %}
