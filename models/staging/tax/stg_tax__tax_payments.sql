with

source as (

    select * from {{ source('tax', 'tax_payments') }}

),

renamed as (

    select
        {{ clean_identifier('payment_id') }} as payment_id,
        {{ clean_identifier('taxpayer_id') }} as taxpayer_id,
        {{ clean_text('tax_type') }} as tax_type,
        cast(amount as {{ catalog_type('decimal(18,2)') }}) as amount,
        cast(paid_date as {{ catalog_type('date') }}) as paid_date,
        {{ month_yyyy_mm('tax_period') }} as tax_period,
        {{ clean_certificate_no('certificate_no') }} as certificate_no,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
