with

source as (

    select * from {{ source('housing', 'mortgages') }}

),

renamed as (

    select
        {{ clean_certificate_no('mortgage_no') }} as mortgage_no,
        {{ clean_certificate_no('certificate_no') }} as certificate_no,
        {{ clean_text('mortgagee') }} as mortgagee,
        cast(amount as {{ catalog_type('decimal(18,2)') }}) as amount,
        cast(start_date as {{ catalog_type('date') }}) as start_date,
        cast(end_date as {{ catalog_type('date') }}) as end_date,
        {{ clean_text('status') }} as status,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
